// Attachments in both UIs (the widget and the agent console; scripts/build-web copies this file
// and upload.js into both dists, like dom.js): how a message's files show. The composer's tray
// and the image viewer are in upload.js, which the widget loads only when a visitor first
// attaches a file or opens an image. File names and every other user value are set as text,
// never parsed as HTML.
import { h, icon } from './dom.js?v=__VERSION__';

export const ICONS = {
  file: 'M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8zm4 18H6V4h7v5h5z',
  x: 'M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4-5.6-5.6L6.4 19 5 17.6l5.6-5.6L5 6.4z',
  retry: 'M17.7 6.3A8 8 0 1 0 19.7 14h-2.1a6 6 0 1 1-1.4-6.2L13 11h7V4z'
};

/** Bytes for a human ("1.5 MB"). */
export function fmtSize(n) {
  if (n >= 1 << 30) return trim(n / (1 << 30)) + ' GB';
  if (n >= 1 << 20) return trim(n / (1 << 20)) + ' MB';
  if (n >= 1 << 10) return trim(n / 1024) + ' KB';
  return n + ' B';
}
function trim(x) { return x.toFixed(1).replace(/\.0$/, ''); }

const RASTER = /^image\/(png|jpeg|gif|webp)$/;
/** Shown inline as an image (the server serves only these inline). */
export function isImage(a) { return RASTER.test(a.contentType || a.type || '') && !a.deleted; }

/** Its links stop working within a minute. */
export function expiring(a) { return !!a.urlsExpireAt && Date.now() > a.urlsExpireAt - 60000; }

/** The files of a message: images as thumbnails of known size (no jump when they load) that
 *  open the viewer, other files as named downloads. */
export function attachmentsView(list, { t, open, refresh }) {
  if (!list || !list.length) return null;
  const box = h('div', { class: 'atts' });
  for (const a of list) {
    if (a.deleted) {
      box.append(h('div', { class: 'att-file gone' }, icon(ICONS.file, 'att-icon'), h('span', { class: 'att-name', text: a.name }), h('span', { class: 'att-size', text: t('fileDeleted') })));
      continue;
    }
    if (isImage(a)) {
      const scale = Math.min(1, 240 / Math.max(a.width || 240, 1), 180 / Math.max(a.height || 180, 1));
      const w = Math.max(1, Math.round((a.width || 240) * scale)), ht = Math.max(1, Math.round((a.height || 180) * scale));
      const img = h('img', { src: a.thumbnailUrl || a.url, width: w, height: ht, alt: a.name, loading: 'lazy', decoding: 'async' });
      let refreshed = false;
      // An expired link (a tab open for hours): ask for fresh ones once.
      img.addEventListener('error', async () => {
        if (refreshed || !refresh) return;
        refreshed = true;
        const n = await refresh(a).catch(() => null);
        if (n) { Object.assign(a, n); img.src = n.thumbnailUrl || n.url; }
      });
      box.append(h('button', { type: 'button', class: 'att-img', 'aria-label': t('openImage', { name: a.name }), onclick: (e) => open(a, e.currentTarget) }, img));
    } else {
      const link = h('a', { class: 'att-file', href: a.url, download: a.name, target: '_blank', rel: 'noopener noreferrer' },
        icon(ICONS.file, 'att-icon'), h('span', { class: 'att-name', text: a.name }), h('span', { class: 'att-size', text: fmtSize(a.size) }));
      link.addEventListener('click', async (e) => {
        if (!refresh || !expiring(a)) return;
        e.preventDefault();
        const n = await refresh(a).catch(() => null);
        if (n) Object.assign(a, n);
        link.href = a.url;
        window.open(a.url, '_blank', 'noopener');
      });
      box.append(link);
    }
  }
  return box;
}

