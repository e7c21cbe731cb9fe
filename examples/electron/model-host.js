'use strict';
// The Electron main process's model logic, free of Electron so that it runs (and is tested)
// under plain Node: it owns one woolly Model, answers requests that arrive over an
// ipcMain-like object and streams pieces back with sender.send(). main.js wires it to the real
// ipcMain and BrowserWindow.
//
// Protocol (channel: payload):
//   invoke 'woolly:status'                        -> { state, progress, error, info }
//   invoke 'woolly:generate' { id, prompt | messages, options }
//        -> while running: sender.send('woolly:token', { id, text })
//        -> resolves { id, ok: true, text, stopReason, timings } or { id, ok: false, code, message }
//   invoke 'woolly:cancel' { id }                 -> true when that request was running
//   event  'woolly:status' (host.on)              -> status changes, for main.js to broadcast
// Errors travel as { ok: false, code, message } because Electron's invoke() keeps only an
// error's message, not its code.

const { EventEmitter } = require('node:events');

const CHANNELS = ['woolly:status', 'woolly:generate', 'woolly:cancel'];

class ModelHost extends EventEmitter {
  constructor({ woolly = require('woolly'), modelPath, loadOptions = {} } = {}) {
    super();
    this.woolly = woolly;
    this.modelPath = modelPath;
    this.loadOptions = loadOptions;
    this.model = null;
    this.status = { state: 'idle', progress: 0, error: null, info: null };
    /** Running requests: id -> { controller, sender }. */
    this.requests = new Map();
    this.ipc = null;
    this.loading = null;
  }

  #setStatus(patch) {
    this.status = { ...this.status, ...patch };
    this.emit('status', this.status);
  }

  /** Loads the model (once); progress goes out as status events. */
  load() {
    if (!this.loading) {
      this.#setStatus({ state: 'loading', progress: 0 });
      let lastPct = -1;
      this.loading = this.woolly.Model.load(this.modelPath, {
        ...this.loadOptions,
        progress: (p) => {
          const pct = Math.floor(p * 100);
          if (pct !== lastPct) {
            lastPct = pct;
            this.#setStatus({ progress: p });
          }
        },
      }).then(
        (model) => {
          this.model = model;
          const info = model.info();
          this.#setStatus({ state: 'ready', progress: 1, info: { path: info.path, contextSize: info.contextSize } });
          return model;
        },
        (e) => {
          this.#setStatus({ state: 'error', error: { code: e.code, message: e.message } });
          throw e;
        },
      );
      this.loading.catch(() => {}); // reported through the status
    }
    return this.loading;
  }

  /** Registers the handlers on `ipcMain` (Electron's, or anything with handle/removeHandler). */
  attach(ipcMain) {
    this.ipc = ipcMain;
    ipcMain.handle('woolly:status', () => this.status);
    ipcMain.handle('woolly:generate', (event, request) => this.generate(event.sender, request));
    ipcMain.handle('woolly:cancel', (_event, request) => this.cancel(request && request.id));
  }

  detach() {
    if (!this.ipc) return;
    for (const c of CHANNELS) this.ipc.removeHandler(c);
    this.ipc = null;
  }

  /** Runs one request, streaming its pieces to `sender`. Never throws: errors are results. */
  async generate(sender, request) {
    const { id, prompt, messages, options = {} } = request || {};
    if (id === undefined || this.requests.has(id)) {
      return { id, ok: false, code: 'WOOLLY_ERR_INVALID_ARGUMENT', message: 'each request needs a new id' };
    }
    const controller = new AbortController();
    this.requests.set(id, { controller, sender });
    this.#watchSender(sender);
    try {
      const model = await this.load();
      const stream = messages
        ? model.chatStream(messages, { ...options, signal: controller.signal })
        : model.stream(prompt, { ...options, signal: controller.signal });
      for await (const text of stream) {
        if (isDestroyed(sender)) {
          controller.abort();
          break;
        }
        sender.send('woolly:token', { id, text });
      }
      const r = await stream.result;
      return { id, ok: true, text: r.text, stopReason: r.stopReason, timings: r.timings };
    } catch (e) {
      return { id, ok: false, code: e.code || 'WOOLLY_ERR_INTERNAL', message: e.message };
    } finally {
      this.requests.delete(id);
    }
  }

  /** Cancels one request; true when it was running. */
  cancel(id) {
    const r = this.requests.get(id);
    if (!r) return false;
    r.controller.abort();
    return true;
  }

  /** Cancels every request of `sender` (a window that closed or reloaded). */
  cancelAll(sender) {
    let n = 0;
    for (const r of this.requests.values()) {
      if (!sender || r.sender === sender) {
        r.controller.abort();
        n++;
      }
    }
    return n;
  }

  #watched = new WeakSet();

  #watchSender(sender) {
    if (this.#watched.has(sender) || typeof sender.once !== 'function') return;
    this.#watched.add(sender);
    sender.once('destroyed', () => this.cancelAll(sender));
  }

  /** Cancels everything and releases the model (app quit). */
  async close() {
    this.cancelAll();
    this.detach();
    if (this.loading) await this.loading.catch(() => {});
    if (this.model) this.model.close();
    this.model = null;
  }
}

function isDestroyed(sender) {
  return typeof sender.isDestroyed === 'function' && sender.isDestroyed();
}

module.exports = { ModelHost, CHANNELS };
