// Launching an app: POST /api/v1/apps/{id}/launch answers with the .rdp file (a one-time launch
// token inside, valid for about a minute). The file is fetched with the CSRF header, turned into
// a blob and handed to the browser as a download; the user's RDP client opens it.
import * as api from './api.js';
import {status} from './dom.js';

function fileNameOf(headers, appId) {
  const disposition = headers.get('Content-Disposition') || '';
  const match = /filename="([^"]+)"/.exec(disposition);
  return match ? match[1] : `${appId}.rdp`;
}

function download(blob, fileName) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // The token inside expires soon anyway; the object URL must outlive the click's download.
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

function refusal(e, appName) {
  if (e.status === 403) return `You may not start ${appName}: ${e.message}.`;
  if (e.status === 503) return `No host can start ${appName} right now (${e.message}). Try again in a moment.`;
  if (e.status === 502) return `The host refused to start ${appName}: ${e.message}.`;
  if (e.status === 404) return `${appName} is no longer published.`;
  return `Starting ${appName} failed: ${e.message}`;
}

// Starts (or reconnects to) the user's session of the app and downloads its .rdp file.
// button: disabled and labelled "Starting…" while the broker starts the session.
export async function launchApp(ctx, appId, appName, button) {
  const label = button ? button.textContent : '';
  if (button) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    button.textContent = 'Starting…';
  }
  status(`Starting ${appName}…`, 'progress');
  try {
    const {blob, headers} = await api.call('POST', `/api/v1/apps/${encodeURIComponent(appId)}/launch`,
      {body: {}, accept: 'blob'});
    const fileName = fileNameOf(headers, appId);
    download(blob, fileName);
    const reused = headers.get('X-Appvirt-Reused') === 'true';
    status(`${appName} is ready${reused ? ' (your running session)' : ''}: open ${fileName} ` +
      'with your remote desktop client within a minute.', 'success');
    return {sessionId: headers.get('X-Appvirt-Session-Id'), reused, fileName};
  } catch (e) {
    if (e.status === 401) ctx.expired();
    else status(refusal(e, appName), 'error');
    return null;
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      button.textContent = label;
    }
  }
}
