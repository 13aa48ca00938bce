// How a session's state reads in the tables. The broker reports starting | running |
// disconnected (no RDP client connected) | ended; older brokers may send a connected flag instead.
export function stateLabel(s) {
  let state = s.state || 'unknown';
  if (state === 'running' && s.connected === false) state = 'disconnected';
  const labels = {starting: 'Starting…', running: 'Running', disconnected: 'Disconnected', ended: 'Ended'};
  return {state, label: labels[state] || state};
}

export function isLive(s) { return s.state !== 'ended'; }
