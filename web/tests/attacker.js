// A hostile page on another origin (a second port on 127.0.0.1, and the same port as "localhost",
// which is another site) that tries to spend the victim's refresh cookie.

import http from 'node:http';

/// Serves `/fetch` (credentialed fetches, results in `window.results`) and `/form` (an
/// auto-submitted form POST) aimed at `keycard`'s /auth/refresh. Resolves to the two origins.
export async function startAttacker(keycard) {
  const target = `${keycard}/auth/refresh`;
  const pages = {
    '/fetch': `<!doctype html><title>totally a cat picture</title><h1>cats</h1><script>
      window.results = (async () => {
        const target = ${JSON.stringify(target)};
        const out = { cookieVisibleHere: document.cookie };
        const attempt = async (init) => {
          try {
            const r = await fetch(target, { method: 'POST', credentials: 'include', ...init });
            return r.type === 'opaque' ? 'opaque' : 'read ' + r.status + ' ' + (await r.text());
          } catch (e) {
            return 'blocked: ' + e.message;
          }
        };
        out.simple = await attempt({});
        // Cookies ignore ports, so this page can read the CSRF cookie: only the Origin check and
        // CORS (which refuses the preflight a custom header needs) stand in the way.
        const csrf = (document.cookie.match(/__Host-keycard_csrf=([^;]+)/) || [])[1] || 'guess';
        out.withHeader = await attempt({ headers: { 'X-CSRF-Token': csrf } });
        out.noCors = await attempt({ mode: 'no-cors' });
        return out;
      })();
    </script>`,
    '/form': `<!doctype html><title>win a prize</title><form method="POST" action="${target}"></form>
      <script>document.forms[0].submit()</script>`,
  };
  const server = http.createServer((req, res) => {
    const body = pages[new URL(req.url, 'http://x').pathname];
    res.writeHead(body ? 200 : 404, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(body || 'not found');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    sameSite: `http://127.0.0.1:${port}`,
    crossSite: `http://localhost:${port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
