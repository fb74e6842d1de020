// The composer's files and the image viewer, for both UIs (see files.js): files go up with
// XMLHttpRequest (for upload progress) to the SDK's `uploadUrl` with the client's bearer
// token, and a send then names them. Set as text only, never parsed as HTML.
import { h, icon } from './dom.js?v=__VERSION__';
import { ICONS, fmtSize, expiring } from './files.js?v=__VERSION__';

const RASTER = /^image\/(png|jpeg|gif|webp)$/;

/** Uploads `file`; returns { promise, abort }. The promise resolves with the attachment (the
 *  server's JSON) and rejects with { message, status, network }. */
export function upload(client, file, { name, conversationId, onProgress } = {}) {
  const xhr = new XMLHttpRequest();
  const q = 'name=' + encodeURIComponent(name || file.name || 'file') +
    (conversationId ? '&conversation=' + encodeURIComponent(conversationId) : '');
  const promise = new Promise((resolve, reject) => {
    xhr.open('POST', client.uploadUrl + '?' + q);
    xhr.setRequestHeader('Authorization', 'Bearer ' + client.token);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 201 && body) resolve(body);
      else reject({ status: xhr.status, network: false, message: (body && body.message) || 'upload failed (' + xhr.status + ')' });
    };
    xhr.onerror = () => reject({ status: 0, network: true, message: 'network' });
    xhr.onabort = () => reject({ status: 0, network: false, aborted: true, message: 'cancelled' });
    xhr.send(file);
  });
  return { promise, abort: () => xhr.abort() };
}

/** The files waiting in a composer: each uploads as soon as it is added, with progress,
 *  cancel and retry; `ready()` waits for them, `attachments()` gives what a send names. */
export class Tray {
  /** opts: { client: () => ChatClient, conversationId: () => string, site: () => SiteInfo|null,
   *  t: (key, vars) => string, onChange: () => void } */
  constructor(opts) {
    this.o = opts;
    this.items = [];
    this.el = opts.el || h('div', { class: 'tray', hidden: true });
    this.errorEl = opts.errorEl || h('p', { class: 'tray-error', role: 'alert', hidden: true });
  }

  get busy() { return this.items.some((i) => i.state === 'uploading'); }
  get empty() { return this.items.length === 0; }

  error(text) {
    this.errorEl.textContent = text || '';
    this.errorEl.hidden = !text;
  }

  /** Adds files (from the picker, a drop or a paste); refuses what the site's limits refuse
   *  at once, with the limit in the message. */
  add(files) {
    const t = this.o.t;
    // Known limits are checked here at once; the server checks them (and the kinds) anyway.
    const site = this.o.site() || {};
    const max = site.maxFileBytes || Infinity;
    const most = site.maxFilesPerMessage || 10;
    this.error('');
    for (const file of files) {
      if (this.items.length >= most) { this.error(t('tooManyFiles', { n: most })); break; }
      if (file.size > max) { this.error(t('fileTooLarge', { name: file.name || 'file', max: fmtSize(max) })); continue; }
      if (site.fileKinds === 'images' && !/^image\//.test(file.type)) { this.error(t('onlyImages')); continue; }
      let name = file.name || 'file';
      // A pasted screenshot is "image.png": name it after the moment.
      if (name === 'image.png' && file.type === 'image/png') name = 'screenshot-' + new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-') + '.png';
      const item = { file, name, size: file.size, state: 'uploading', progress: 0, result: null, error: '', up: null, preview: null };
      if (RASTER.test(file.type)) { try { item.preview = URL.createObjectURL(file); } catch { /* none */ } }
      this.items.push(item);
      this.start(item);
    }
    this.render();
  }

  start(item) {
    item.state = 'uploading';
    item.progress = 0;
    item.error = '';
    const client = this.o.client();
    item.up = upload(client, item.file, {
      name: item.name, conversationId: this.o.conversationId(),
      onProgress: (p) => { item.progress = p; this.progress(item); }
    });
    item.up.promise.then((a) => {
      item.state = 'done';
      item.result = a;
      this.render();
    }, (e) => {
      if (e.aborted) return;
      item.state = 'failed';
      item.error = e.network ? this.o.t('uploadNetwork') : e.message;
      this.render();
    });
    this.render();
  }

  remove(item) {
    if (item.state === 'uploading' && item.up) item.up.abort();
    if (item.preview) URL.revokeObjectURL(item.preview);
    this.items = this.items.filter((i) => i !== item);
    this.render();
  }

  /** Waits for the uploads; true when every file is uploaded. */
  async ready() {
    await Promise.all(this.items.map((i) => i.up && i.up.promise.catch(() => {})));
    return this.items.every((i) => i.state === 'done');
  }

  attachments() { return this.items.filter((i) => i.state === 'done').map((i) => i.result); }

  clear() {
    for (const i of this.items) if (i.preview) URL.revokeObjectURL(i.preview);
    this.items = [];
    this.error('');
    this.render();
  }

  progress(item) {
    if (item.bar) item.bar.style.width = Math.round(item.progress * 100) + '%';
  }

  render() {
    const t = this.o.t;
    this.el.hidden = this.items.length === 0;
    this.el.replaceChildren(...this.items.map((item) => {
      const actions = [];
      if (item.state === 'failed') {
        actions.push(h('button', { type: 'button', class: 'chip-btn', 'aria-label': t('retryUpload') + ': ' + item.name, title: t('retryUpload'), onclick: () => this.start(item) }, icon(ICONS.retry)));
      }
      actions.push(h('button', {
        type: 'button', class: 'chip-btn',
        'aria-label': (item.state === 'uploading' ? t('cancelUpload') : t('removeFile')) + ': ' + item.name,
        title: item.state === 'uploading' ? t('cancelUpload') : t('removeFile'),
        onclick: () => this.remove(item)
      }, icon(ICONS.x)));
      item.bar = h('span', { class: 'chip-bar' });
      const chip = h('div', { class: 'chip ' + item.state, role: 'group', 'aria-label': item.name },
        item.preview ? h('img', { class: 'chip-thumb', src: item.preview, alt: '' }) : icon(ICONS.file, 'chip-icon'),
        h('span', { class: 'chip-text' },
          h('span', { class: 'chip-name', text: item.name }),
          h('span', { class: 'chip-size', text: item.state === 'failed' ? item.error : fmtSize(item.size) })),
        ...actions,
        item.state === 'uploading' ? h('span', { class: 'chip-progress', role: 'progressbar', 'aria-label': item.name }, item.bar) : null);
      this.progress(item);
      return chip;
    }));
    if (this.o.onChange) this.o.onChange();
  }
}

/** The full-size image viewer: a modal dialog; Escape or the close button closes it, and
 *  focus returns to what opened it. */
export class Viewer {
  /** `refresh(a)` gives fresh links for an attachment (or null). */
  constructor(container, { t, refresh }) {
    this.container = container;
    this.t = t;
    this.refresh = refresh;
    this.el = null;
  }

  async open(a, opener) {
    this.close();
    this.opener = opener;
    const t = this.t;
    if (this.refresh && expiring(a)) a = Object.assign(a, (await this.refresh(a).catch(() => null)) || {});
    const closeBtn = h('button', { type: 'button', class: 'viewer-close', 'aria-label': t('closeViewer'), onclick: () => this.close() }, icon(ICONS.x));
    const img = h('img', { class: 'viewer-img', src: a.url, alt: a.name, width: a.width || undefined, height: a.height || undefined });
    const download = h('a', { class: 'viewer-download', href: a.url, download: a.name, target: '_blank', rel: 'noopener noreferrer', text: t('download') });
    this.el = h('div', {
      class: 'viewer', role: 'dialog', 'aria-modal': 'true', 'aria-label': a.name,
      onkeydown: (e) => {
        if (e.key === 'Escape') { e.stopPropagation(); e.preventDefault(); this.close(); }
        else if (e.key === 'Tab') { e.preventDefault(); (e.target === closeBtn ? download : closeBtn).focus(); }
      },
      onclick: (e) => { if (e.target === this.el) this.close(); }
    }, h('div', { class: 'viewer-bar' }, h('span', { class: 'viewer-name', text: a.name }), download, closeBtn), img);
    this.container.append(this.el);
    closeBtn.focus();
  }

  close() {
    if (!this.el) return;
    this.el.remove();
    this.el = null;
    if (this.opener && this.opener.isConnected) this.opener.focus();
    this.opener = null;
  }

  get isOpen() { return !!this.el; }
}
