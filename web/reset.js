// The password-reset form (GET /auth/password/reset). The mailed link carries the token in the
// URL fragment (#token=kcpr_…), which browsers never send to a server: opening the page spends
// nothing. Submitting posts the token and the new password to POST /auth/password/reset.
const params = new URLSearchParams(location.hash.slice(1));
const token = params.get("token");
// Keep the token out of the history and of anything that reads the address later.
history.replaceState(null, "", location.pathname);

const form = document.getElementById("reset-form");
const status = document.getElementById("reset-status");

if (!token) {
  status.textContent = "This link has no reset token. Ask for a new link.";
  form.hidden = true;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const newPassword = document.getElementById("new-password").value;
  const response = await fetch("/auth/password/reset", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token, new_password: newPassword }),
    credentials: "omit",
  });
  if (response.status === 204) {
    form.hidden = true;
    status.textContent = "Your password is changed. Every session was signed out: sign in again.";
    return;
  }
  const body = await response.json().catch(() => ({}));
  status.textContent = body.error_description || `The password could not be changed (${response.status}).`;
});
