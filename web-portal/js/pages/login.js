// Sign in: user name and password to POST /api/v1/login. A wrong password (401) and a lockout
// (429 with Retry-After) get messages a user can act on; the error is announced (role=alert)
// and focus returns to the field to correct.
import * as api from '../api.js';
import {h, replace} from '../dom.js';

function lockoutMessage(seconds) {
  if (!seconds || Number.isNaN(seconds)) {
    return 'Too many failed sign-ins. Your account is locked for a while; try again later.';
  }
  const until = new Date(Date.now() + seconds * 1000).toLocaleTimeString();
  const minutes = Math.ceil(seconds / 60);
  const span = seconds < 90 ? `${seconds} seconds` : `${minutes} minutes`;
  return `Too many failed sign-ins. Try again in ${span} (at ${until}).`;
}

function messageFor(e) {
  if (e.status === 401) return 'Wrong user name or password.';
  if (e.status === 429) return lockoutMessage(e.retryAfter);
  if (e.status === 503) return 'The sign-in service is unavailable right now. Try again later.';
  if (e.status === 400) return `The broker refused the request: ${e.message}`;
  return `Sign-in failed: ${e.message}`;
}

export async function render(main, ctx) {
  const user = h('input', {id: 'username', name: 'username', type: 'text', autocomplete: 'username',
    required: true, autocapitalize: 'none', spellcheck: 'false'});
  const password = h('input', {id: 'password', name: 'password', type: 'password',
    autocomplete: 'current-password', required: true, 'aria-describedby': 'login-error'});
  const error = h('p', {id: 'login-error', class: 'error', role: 'alert'});
  const submit = h('button', {type: 'submit', class: 'primary'}, 'Sign in');
  const form = h('form', {class: 'login card', novalidate: true, 'aria-labelledby': 'login-title'},
    h('div', {class: 'field'}, h('label', {for: 'username'}, 'User name'), user),
    h('div', {class: 'field'}, h('label', {for: 'password'}, 'Password'), password),
    error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    if (!user.value || !password.value) {
      error.textContent = 'Enter your user name and password.';
      (user.value ? password : user).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const me = await api.call('POST', '/api/v1/login',
        {body: {username: user.value, password: password.value}});
      password.value = '';
      ctx.signedIn(me);
    } catch (e) {
      error.textContent = messageFor(e);
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });
  replace(main, h('h1', {id: 'login-title'}, 'Sign in'), form);
  user.focus();
}
