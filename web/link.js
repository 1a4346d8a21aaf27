// The pages mailed links open: GET /auth/email/verify, /auth/email/confirm and
// /auth/email/cancel (link.html, filled in by the server for each; `data-flow` on <body> says
// which). The link carries its token in the URL fragment (#token=kc…), which browsers never
// send to a server, and opening the page spends nothing either: link scanners in mail systems
// open links (and may run their scripts) before people do. Only a click on the button posts the
// token.
import { createKeycard, takeLinkToken } from '/keycard.js';

const FLOWS = {
  verify: {
    spend: (keycard, token) => keycard.verifyEmail(token),
    done: 'Your address is verified. You can close this page.',
  },
  confirm: {
    spend: (keycard, token) => keycard.confirmEmailChange(token),
    done: 'Your address is changed: log in with the new one from now on.',
  },
  cancel: {
    spend: (keycard, token) => keycard.cancelEmailChange(token),
    done: 'The change is cancelled: the address is yours (again).',
  },
};

const keycard = createKeycard();
const flow = FLOWS[document.body.dataset.flow];
// Out of the address bar and the history at once; kept in this variable only.
const token = takeLinkToken();
// Another link opened in this tab changes only the fragment, which loads no new page: load it
// afresh, so its token is the one taken.
window.addEventListener('hashchange', () => location.reload());
const button = document.getElementById('link-action');
const status = document.getElementById('link-status');

function show(state, text) {
  status.dataset.state = state;
  status.className = state === 'failed' ? 'error' : 'notice';
  status.textContent = text;
}

if (!token || !flow) {
  button.hidden = true;
  show('failed', 'This link has no token. Open the link from the mail again, or ask for a new one.');
}

button.addEventListener('click', async () => {
  button.disabled = true;
  show('busy', 'One moment…');
  try {
    await flow.spend(keycard, token);
    button.hidden = true;
    show('done', flow.done);
  } catch (err) {
    // A network failure may be retried; a refused token will not work again.
    button.disabled = err.status !== 0;
    show('failed', err.description || err.message);
  }
});
