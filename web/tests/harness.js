// Helpers of the browser test: launching Debian's Chromium, watching pages for errors, recording
// every refresh request, dumping what a page script can read, and serving web/ from disk.

import { readFileSync } from 'node:fs';
import path from 'node:path';

export const LAUNCH = {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Without the background-networking flags Chromium's own connections are refused on a closed network.
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Reports page errors; a 401/403 "Failed to load resource" is expected along the way.
export function watch(p, name, problems) {
  p.on('pageerror', (err) => problems.push(`${name}: ${err.message}`));
  p.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource: the server responded with a status of 40[13]/.test(msg.text())) {
      problems.push(`${name}: ${msg.text()}`);
    }
  });
  return p;
}

/// Records every refresh request with the CSRF header and refresh cookie it presented.
export function recordRefreshes(ctx, label, refreshes) {
  ctx.on('request', async (req) => {
    if (!req.url().endsWith('/auth/refresh') || req.method() !== 'POST') return;
    const entry = { at: Date.now(), context: label, page: req.frame()?.page()?.url() ?? '', status: null };
    refreshes.push(entry);
    const headers = await req.allHeaders();
    entry.csrf = headers['x-csrf-token'] ?? null;
    entry.origin = headers.origin ?? null;
    entry.cookie = /__Secure-keycard_refresh=([^;]+)/.exec(headers.cookie ?? '')?.[1] ?? null;
    const res = await req.response().catch(() => null);
    if (res) {
      entry.status = res.status();
      if (res.status() >= 400) entry.error = (await res.json().catch(() => ({}))).error;
    }
  });
}

export async function signedIn(p) {
  await p.waitForSelector('#status[data-state="in"]', { timeout: 10000 });
}

export async function signedOut(p) {
  await p.waitForSelector('#status[data-state="out"]', { timeout: 10000 });
}

/// Everything a script on the page can read in storage (and the cookie string).
export function readableState(p) {
  return p.evaluate(async () => {
    const dump = (s) => Object.fromEntries(Object.keys(s).map((k) => [k, s.getItem(k)]));
    const databases = indexedDB.databases ? await indexedDB.databases() : [];
    const idb = {};
    for (const { name } of databases) {
      idb[name] = await new Promise((resolve) => {
        const open = indexedDB.open(name);
        open.onsuccess = async () => {
          const db = open.result;
          const stores = {};
          for (const storeName of db.objectStoreNames) {
            stores[storeName] = await new Promise((r) => {
              const get = db.transaction(storeName).objectStore(storeName).getAll();
              get.onsuccess = () => r(get.result);
              get.onerror = () => r('unreadable');
            });
          }
          db.close();
          resolve(stores);
        };
        open.onerror = () => resolve('unreadable');
      });
    }
    const cacheNames = 'caches' in self ? await caches.keys() : [];
    return {
      cookie: document.cookie,
      localStorage: dump(localStorage),
      sessionStorage: dump(sessionStorage),
      indexedDB: idb,
      caches: cacheNames,
    };
  });
}

/// The files keycard builds into its binary from web/, by the path it serves each at.
const WEB_FILES = {
  '/': 'index.html',
  '/demo.js': 'demo.js',
  '/keycard.js': 'keycard.js',
  '/style.css': 'style.css',
  '/reset.js': 'reset.js',
  '/link.js': 'link.js',
};

/// With WEB_FROM_DISK=1: `context`'s requests for those files at `base` are answered with this
/// checkout's web/ files and keycard's own headers (CSP…), to test changes to web/ against a
/// binary built before them. Without it: nothing (the binary's own copies are what is tested).
export async function serveWebFromDisk(context, base) {
  if (!process.env.WEB_FROM_DISK) return;
  const origin = new URL(base).origin;
  await context.route((url) => url.origin === origin && Object.hasOwn(WEB_FILES, url.pathname), async (route) => {
    const response = await route.fetch(); // keycard's answer: its headers, this checkout's body
    const file = WEB_FILES[new URL(route.request().url()).pathname];
    await route.fulfill({ response, body: readFileSync(path.resolve(import.meta.dirname, '..', file)) });
  });
}
