'use strict';
// The page: asks the main process for generations through window.woolly (preload.js) and shows
// the pieces as they arrive. The UI stays responsive: all the work is in the main process's
// worker threads.

const $ = (id) => document.getElementById(id);
let current = null;

function showStatus(s) {
  const el = $('status');
  el.className = s.state === 'error' ? 'error' : '';
  el.textContent =
    s.state === 'loading' ? `loading the model... ${Math.round(s.progress * 100)}%`
    : s.state === 'ready' ? `ready: ${s.info.path} (context ${s.info.contextSize})`
    : s.state === 'error' ? `cannot load the model: ${s.error.code}: ${s.error.message}`
    : s.state;
}

window.woolly.onStatus(showStatus);
window.woolly.status().then(showStatus);

$('go').addEventListener('click', async () => {
  if (current) return;
  const out = $('output');
  out.textContent = '';
  out.className = '';
  $('go').disabled = true;
  $('stop').disabled = false;
  const options = { maxTokens: Number($('max').value), temperature: Number($('temp').value) };
  current = window.woolly.generate($('prompt').value, options, (text) => {
    out.textContent += text;
  });
  const r = await current.done;
  if (!r.ok) {
    out.className = r.code === 'WOOLLY_ERR_CANCELLED' ? '' : 'error';
    out.textContent += r.code === 'WOOLLY_ERR_CANCELLED' ? ' [stopped]' : `\n${r.code}: ${r.message}`;
  }
  current = null;
  $('go').disabled = false;
  $('stop').disabled = true;
});

$('stop').addEventListener('click', () => current && current.cancel());
