'use strict';
// The Electron example's main-process logic (examples/electron/model-host.js) under Node, with
// EventEmitters standing in for ipcMain and webContents: the same code path Electron runs.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const path = require('node:path');
const { greedy, reference, repoRoot } = require('./helpers');

const { ModelHost } = require(path.join(repoRoot, 'examples', 'electron', 'model-host.js'));

/** ipcMain's handle/invoke, as Electron does it (the handler's value or rejection comes back). */
class FakeIpcMain {
  handlers = new Map();
  handle(channel, fn) {
    if (this.handlers.has(channel)) throw new Error(`second handler for ${channel}`);
    this.handlers.set(channel, fn);
  }
  removeHandler(channel) {
    this.handlers.delete(channel);
  }
  invoke(sender, channel, ...args) {
    const fn = this.handlers.get(channel);
    if (!fn) return Promise.reject(new Error(`No handler registered for '${channel}'`));
    // Electron structured-clones arguments and results across processes.
    return Promise.resolve(fn({ sender }, ...structuredClone(args))).then((r) => structuredClone(r));
  }
}

/** webContents: send() records what the renderer would receive; 'destroyed' on close. */
class FakeWebContents extends EventEmitter {
  sent = [];
  destroyed = false;
  send(channel, payload) {
    assert.equal(this.destroyed, false, 'send after destroy');
    this.sent.push([channel, structuredClone(payload)]);
    this.emit(`sent:${channel}`, payload);
  }
  isDestroyed() {
    return this.destroyed;
  }
  destroy() {
    this.destroyed = true;
    this.emit('destroyed');
  }
  tokens(id) {
    return this.sent.filter(([c, p]) => c === 'woolly:token' && p.id === id).map(([, p]) => p.text);
  }
}

let host;
let ipc;
const statuses = [];
before(async () => {
  host = new ModelHost();
  host.on('status', (s) => statuses.push(s.state));
  ipc = new FakeIpcMain();
  host.attach(ipc);
  await host.load();
});
after(() => host.close());

test('status reports the load', async () => {
  const s = await ipc.invoke(new FakeWebContents(), 'woolly:status');
  assert.equal(s.state, 'ready');
  assert.ok(s.info.path.endsWith('.gguf'));
  assert.deepEqual([statuses[0], statuses.at(-1)], ['loading', 'ready']);
});

test('a generation streams its pieces to the renderer', async () => {
  const ref = reference('capital');
  const wc = new FakeWebContents();
  const r = await ipc.invoke(wc, 'woolly:generate', { id: 'a', prompt: ref.prompt, options: greedy(ref.n) });
  assert.equal(r.ok, true, r.message);
  assert.equal(r.text, host.model.detokenize(ref.want));
  assert.ok(wc.tokens('a').length > 3);
  assert.equal(wc.tokens('a').join(''), r.text);
});

test('chat requests work too', async () => {
  const wc = new FakeWebContents();
  const messages = [{ role: 'user', content: 'Write a haiku about the sea.' }];
  const r = await ipc.invoke(wc, 'woolly:generate', { id: 'c', messages, options: greedy(8) });
  assert.equal(r.ok, true, r.message);
  assert.equal(wc.tokens('c').join(''), r.text);
});

test('the renderer can cancel a request', async () => {
  const wc = new FakeWebContents();
  wc.once('sent:woolly:token', () => ipc.invoke(wc, 'woolly:cancel', { id: 'b' }));
  const r = await ipc.invoke(wc, 'woolly:generate', { id: 'b', prompt: 'Once upon a time', options: { maxTokens: 500, ignoreEos: true } });
  assert.equal(r.ok, false);
  assert.equal(r.code, 'WOOLLY_ERR_CANCELLED');
  assert.ok(wc.tokens('b').length < 50);
  assert.equal(await ipc.invoke(wc, 'woolly:cancel', { id: 'b' }), false, 'no longer running');
});

test('closing the window cancels its requests, not the others', async () => {
  const closing = new FakeWebContents();
  const other = new FakeWebContents();
  closing.once('sent:woolly:token', () => closing.destroy());
  const ref = reference('count');
  const [x, y] = await Promise.all([
    ipc.invoke(closing, 'woolly:generate', { id: 'x', prompt: 'Once upon a time', options: { maxTokens: 500, ignoreEos: true } }),
    ipc.invoke(other, 'woolly:generate', { id: 'y', prompt: ref.prompt, options: greedy(ref.n) }),
  ]);
  assert.equal(x.ok, false);
  assert.equal(x.code, 'WOOLLY_ERR_CANCELLED');
  assert.equal(y.ok, true, y.message);
  assert.equal(y.text, host.model.detokenize(ref.want));
  assert.equal(host.requests.size, 0);
});

test('errors come back as { ok: false, code, message }', async () => {
  const wc = new FakeWebContents();
  const r = await ipc.invoke(wc, 'woolly:generate', { id: 'e', prompt: 'hi', options: { topP: 7 } });
  assert.deepEqual([r.ok, r.code], [false, 'WOOLLY_ERR_INVALID_ARGUMENT']);
  assert.match(r.message, /topP/);
  const noId = await ipc.invoke(wc, 'woolly:generate', { prompt: 'hi' });
  assert.equal(noId.ok, false);
});

test('a model that cannot load reports its error', async () => {
  const bad = new ModelHost({ modelPath: path.join(__dirname, 'does-not-exist.gguf') });
  const fake = new FakeIpcMain();
  bad.attach(fake);
  const r = await fake.invoke(new FakeWebContents(), 'woolly:generate', { id: 1, prompt: 'hi' });
  assert.deepEqual([r.ok, r.code], [false, 'WOOLLY_ERR_IO']);
  const s = await fake.invoke(new FakeWebContents(), 'woolly:status');
  assert.equal(s.state, 'error');
  await bad.close();
});
