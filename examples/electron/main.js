'use strict';
// Electron main process: owns the model (through ModelHost), serves the renderer over IPC and
// streams tokens with webContents.send. Run with `npm start` in this folder.

const path = require('node:path');
const { app, BrowserWindow, ipcMain } = require('electron');
const { ModelHost } = require('./model-host');

// WOOLLY_MODEL_PATH picks a model; otherwise Woolly's default (WOOLLY_MODEL or the cache).
const host = new ModelHost({ modelPath: process.env.WOOLLY_MODEL_PATH || undefined });

function createWindow() {
  const win = new BrowserWindow({
    width: 900,
    height: 700,
    webPreferences: {
      preload: path.join(__dirname, 'preload.js'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
    },
  });
  const onStatus = (s) => {
    if (!win.isDestroyed()) win.webContents.send('woolly:status', s);
  };
  host.on('status', onStatus);
  const contents = win.webContents;
  // Reloads and closes drop the page's requests: nobody is left to read their tokens.
  contents.on('did-start-navigation', (_e, _url, isInPlace, isMainFrame) => {
    if (isMainFrame && !isInPlace) host.cancelAll(contents);
  });
  win.on('closed', () => {
    host.off('status', onStatus);
    host.cancelAll(contents);
  });
  win.loadFile(path.join(__dirname, 'index.html'));
}

app.whenReady().then(() => {
  host.attach(ipcMain);
  host.load(); // in the background: the window shows at once, with load progress
  createWindow();
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow();
  });
});

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});

app.on('will-quit', () => {
  host.close();
});
