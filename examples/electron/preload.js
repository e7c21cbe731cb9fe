'use strict';
// The renderer's only door to the model: a small API over IPC (contextIsolation on, no Node in
// the page).

const { contextBridge, ipcRenderer } = require('electron');

let nextId = 1;
const tokenListeners = new Map();

ipcRenderer.on('woolly:token', (_event, { id, text }) => {
  const fn = tokenListeners.get(id);
  if (fn) fn(text);
});

function start(request, onToken) {
  const id = `${Date.now()}-${nextId++}`;
  if (onToken) tokenListeners.set(id, onToken);
  const done = ipcRenderer
    .invoke('woolly:generate', { id, ...request })
    .finally(() => tokenListeners.delete(id));
  return { id, done, cancel: () => ipcRenderer.invoke('woolly:cancel', { id }) };
}

contextBridge.exposeInMainWorld('woolly', {
  status: () => ipcRenderer.invoke('woolly:status'),
  onStatus: (fn) => {
    const listener = (_event, s) => fn(s);
    ipcRenderer.on('woolly:status', listener);
    return () => ipcRenderer.removeListener('woolly:status', listener);
  },
  /** Starts a generation: { id, done: Promise<{ ok, text | code, message }>, cancel() }. */
  generate: (prompt, options, onToken) => start({ prompt, options }, onToken),
  chat: (messages, options, onToken) => start({ messages, options }, onToken),
});
