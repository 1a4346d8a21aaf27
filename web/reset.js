// The password-reset form (GET /auth/password/reset). The mailed link carries the token in the
// URL fragment (#token=kcpr_…), which browsers never send to a server: opening the page spends
// nothing. Submitting posts the token and the new password to POST /auth/password/reset.
import { createKeycard, takeLinkToken } from '/keycard.js';

const keycard = createKeycard();
// Out of the address bar and the history at once; kept in this variable only.
const token = takeLinkToken();
// Another link opened in this tab changes only the fragment, which loads no new page: load it
// afresh, so its token is the one taken.
window.addEventListener('hashchange', () => location.reload());

const form = document.getElementById('reset-form');
const status = document.getElementById('reset-status');

function show(state, text) {
  status.dataset.state = state;
  status.className = state === 'failed' ? 'error' : 'notice';
  status.textContent = text;
}

if (!token) {
  show('failed', 'This link has no reset token. Ask for a new link.');
  form.hidden = true;
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    await keycard.resetPassword(token, document.getElementById('new-password').value);
    form.hidden = true;
    show('done', 'Your password is changed. Every session was signed out: sign in again.');
  } catch (err) {
    // weak_password: choose another; a refused token or a network failure: say so.
    button.disabled = err.code === 'invalid_reset_token';
    show('failed', err.description || `The password could not be changed (${err.code}).`);
  }
});
