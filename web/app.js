// web/app.js: the m2fp page. Upload (or drop) a photo -> POST /jobs (upload progress), poll
// GET /jobs/{id} (queued / parsing progress) -> draw the coloured parsing over the photo with a legend
// -> POST /recommend with the photo's SHA-256 (no second upload while the server has it cached) ->
// each person's garments with colour swatches and the suggestions with their reasons.
// document.body.dataset.state says where the page is (idle | working | done | error); tests wait on it.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { file: null, sha: null, result: null, photo: null, mask: null, recoSeq: 0,
  focus: null, // null | {person: k} (hovered card) | {label: id} (isolated legend entry)
  lang: (localStorage.getItem('m2fp-lang') || ((navigator.language || '').startsWith('zh') ? 'zh' : 'en')) };

// ---- zh / en: interface strings (data-i18n elements) and label names --------------------------------
const ZH = {
  'Drop a photo here': '把照片拖到这里', 'or click to choose a file (PNG, JPEG or BMP)': '或点击选择文件(PNG、JPEG 或 BMP)',
  'Style': '风格', 'Occasion': '场合', 'Season': '季节', 'Suggestions': '建议数', 'Refine': '细化', 'Overlay': '叠加', 'Legend': '图例',
  'Persons, garments and suggestions': '人物、服装与建议', 'Downloads': '下载', 'labels.png': 'labels.png(类别编号)',
  'coloured picture': '彩色解析图', 'JSON': 'JSON', 'show all': '全部显示', 'Person': '人物',
  'human parsing & outfit advice': '人体解析与穿搭建议',
};
const LABELS_ZH = {
  Background: '背景', Hat: '帽子', Hair: '头发', Glove: '手套', Sunglasses: '墨镜', UpperClothes: '上衣', 'Upper-clothes': '上衣',
  Dress: '连衣裙', Coat: '外套', Socks: '袜子', Pants: '裤子', 'Torso-skin': '躯干皮肤', Scarf: '围巾', Skirt: '裙子',
  Face: '脸', 'Left-arm': '左臂', 'Right-arm': '右臂', 'Left-leg': '左腿', 'Right-leg': '右腿', 'Left-shoe': '左鞋',
  'Right-shoe': '右鞋', Human: '人', Jumpsuits: '连体衣',
};
const t = (s) => (state.lang === 'zh' && ZH[s]) || s;
const labelName = (s) => (state.lang === 'zh' && LABELS_ZH[s]) || s;

function applyLang() {
  document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  $('lang').textContent = state.lang === 'zh' ? 'English' : '中文';
  if (state.result) renderLegend(state.result);
}

// COCO compressed RLE (result.json / /predict instances[].mask) -> Uint8Array [h * w], row-major 0/1.
function rleDecode(rle) {
  const [h, w] = rle.size;
  const s = rle.counts;
  const counts = [];
  for (let p = 0; p < s.length;) {
    let x = 0, k = 0, more = true;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  const out = new Uint8Array(h * w);
  let pos = 0;
  for (let i = 0; i < counts.length; i++) {
    if (i % 2) for (let j = pos; j < pos + counts[i]; j++) out[(j % h) * w + Math.floor(j / h)] = 1; // column-major
    pos += counts[i];
  }
  return out;
}

function setState(s) { document.body.dataset.state = s; }

function showError(msg) {
  const e = $('error');
  e.textContent = msg;
  e.hidden = !msg;
  if (msg) setState('error');
}

function setProgress(pct, text) {
  $('progress').hidden = false;
  const bar = $('progress-bar');
  if (pct === null) bar.removeAttribute('value'); // indeterminate
  else bar.value = Math.max(0, Math.min(100, pct));
  $('progress-text').textContent = text;
}

function hideProgress() { $('progress').hidden = true; }

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  let j = null;
  try { j = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw new Error((j && j.error) || `${url}: HTTP ${r.status}`);
  return j;
}

// POST with upload progress (fetch has none): resolves {status, json, headers}.
function postForm(url, form, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', url);
    x.responseType = 'json';
    if (onProgress) x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(100 * e.loaded / e.total); };
    x.onload = () => resolve({ status: x.status, json: x.response || {}, retryAfter: x.getResponseHeader('Retry-After') });
    x.onerror = () => reject(new Error('network error: the server did not answer'));
    x.send(form);
  });
}

function errorOf(r) {
  let msg = (r.json && r.json.error) || `HTTP ${r.status}`;
  if (r.status === 429 && r.retryAfter) msg += ` (try again in ${r.retryAfter} s)`;
  return new Error(msg);
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

const swatch = (hex, title, big) => el('span', { class: big ? 'swatch big' : 'swatch', style: `background:${hex}`, title: title || hex });
const pct = (x) => `${(100 * x).toFixed(x < 0.01 ? 2 : 1)} %`;

// ---- server state ----------------------------------------------------------------------------------
async function loadHealth() {
  try {
    const h = await getJSON('/health');
    const m = h.model;
    $('model-info').textContent =
      `${m.summary} · ${m.precision} · ${h.workers} worker${h.workers > 1 ? 's' : ''} × ${h.threads_per_worker} threads` +
      ` · catalogue: ${h.catalog.items} items`;
    if (m.synthetic) {
      const b = $('synthetic-banner');
      b.textContent = '⚠ ' + (m.warning || 'This model has synthetic (random) weights: its parsings are not meaningful.');
      b.hidden = false;
    }
    const fill = (id, values) => { for (const v of values) $(id).append(el('option', { value: v }, v)); };
    fill('style', h.options.styles);
    fill('occasion', h.options.occasions);
    fill('season', h.options.seasons);
  } catch (e) {
    showError('Cannot reach the m2fp server: ' + e.message);
  }
}

// ---- one photo -------------------------------------------------------------------------------------
async function analyse(file) {
  showError('');
  setState('working');
  const previous = { file: state.file, sha: state.sha };
  const t0 = performance.now();
  try {
    const form = new FormData();
    form.append('task', 'predict');
    if ($('refine').checked) form.append('refine', 'dark,small');
    form.append('image', file, file.name);
    setProgress(0, 'Uploading…');
    const r = await postForm('/jobs', form, (p) => setProgress(p * 0.25, `Uploading ${p.toFixed(0)} %`));
    if (r.status !== 202) throw errorOf(r);
    const sha = r.json.image.sha256;
    let job = r.json;
    for (;;) {
      if (job.state === 'done' && job.result) break;
      if (job.state === 'done') { job = await getJSON(job.url); continue; } // answered from the cache at once
      if (job.state === 'failed') throw new Error(job.error ? job.error.error : 'the job failed');
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      if (job.state === 'queued') setProgress(null, `Queued${job.queue_depth ? ` (${job.queue_depth} waiting)` : ''}… ${s} s`);
      else setProgress(null, `Parsing the photo… ${s} s`);
      await sleep(job.state === 'queued' ? 500 : 300);
      job = await getJSON(job.url || `/jobs/${r.json.id}`);
    }
    state.file = file;  // only now: a failed photo leaves the previous result on the page
    state.sha = sha;
    state.result = job.result;
    state.focus = null;
    setProgress(90, 'Drawing…');
    await renderParsing(file, job.result);
    await refreshRecommendations();
    hideProgress();
    setState('done');
  } catch (e) {
    hideProgress();
    state.file = previous.file;
    state.sha = previous.sha;
    showError(e.message);
  }
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('the browser could not display this image'));
    img.src = src;
  });
}

// The coloured label map with a transparent background (label 0 is black in colored_mask).
function maskCanvas(maskImg) {
  const c = document.createElement('canvas');
  c.width = maskImg.naturalWidth;
  c.height = maskImg.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(maskImg, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height);
  const px = d.data;
  for (let i = 0; i < px.length; i += 4) if (px[i] === 0 && px[i + 1] === 0 && px[i + 2] === 0) px[i + 3] = 0;
  g.putImageData(d, 0, 0);
  return c;
}

async function renderParsing(file, res) {
  const url = URL.createObjectURL(file);
  try {
    state.photo = await loadImage(url);
  } catch (_) {
    state.photo = null; // e.g. a BMP variant the browser cannot show: the mask alone is drawn
  }
  state.mask = maskCanvas(await loadImage('data:image/png;base64,' + res.colored_mask));
  drawOverlay();

  renderLegend(res);
  const dl = (name, href) => el('a', { class: 'download', href, download: name, 'data-download': name }, name);
  const json = URL.createObjectURL(new Blob([JSON.stringify(res, null, 1)], { type: 'application/json' }));
  $('downloads').replaceChildren(
    dl('labels.png', 'data:image/png;base64,' + res.labels_png),
    dl('parsing_color.png', 'data:image/png;base64,' + res.colored_mask),
    dl('result.json', json));

  const t = res.timings_ms;
  $('result-meta').textContent = `${res.image.width}×${res.image.height} · ${res.persons.length} person${res.persons.length === 1 ? '' : 's'} · ` +
    (res.cached ? 'from the cache' : `parsed in ${(t.engine / 1000).toFixed(2)} s`);
  $('result').hidden = false;
}

function renderLegend(res) {
  const legend = $('legend');
  legend.replaceChildren();
  for (const l of res.legend) {
    const li = el('li', { 'data-label': l.id, tabindex: '0', title: t('show all') },
      swatch(l.color, l.label), el('span', {}, labelName(l.label)), el('span', { class: 'share' }, pct(l.fraction)));
    if (state.focus && state.focus.label === l.id) li.classList.add('active');
    const toggle = () => {
      state.focus = state.focus && state.focus.label === l.id ? null : { label: l.id, color: l.color };
      renderLegend(res);
      drawOverlay();
    };
    li.addEventListener('click', toggle);
    li.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(); } });
    legend.append(li);
  }
  if (!res.legend.length) legend.append(el('li', { class: 'none' }, 'nothing but background'));
}

// The mask canvas reduced to what is in focus: one person's human instance, or one label's colour.
function focusedMask() {
  const f = state.focus, res = state.result;
  if (!f || !res) return state.mask;
  const w = state.mask.width, h = state.mask.height;
  const c = document.createElement('canvas');
  c.width = w; c.height = h;
  const g = c.getContext('2d');
  g.drawImage(state.mask, 0, 0);
  const d = g.getImageData(0, 0, w, h), px = d.data;
  let keep;
  if (f.person !== undefined) {
    const p = res.persons[f.person];
    const inst = p && res.instances[p.instance];
    keep = inst && inst.mask ? rleDecode(inst.mask) : new Uint8Array(w * h);
  } else {
    const hex = f.color, r = parseInt(hex.slice(1, 3), 16), gg = parseInt(hex.slice(3, 5), 16), b = parseInt(hex.slice(5, 7), 16);
    keep = new Uint8Array(w * h);
    for (let i = 0; i < w * h; i++) keep[i] = px[4 * i] === r && px[4 * i + 1] === gg && px[4 * i + 2] === b ? 1 : 0;
  }
  for (let i = 0; i < w * h; i++) {
    if (!keep[i]) px[4 * i + 3] = 0;
    else if (f.person !== undefined && px[4 * i + 3] === 0) { px[4 * i] = 255; px[4 * i + 1] = 255; px[4 * i + 2] = 255; px[4 * i + 3] = 255; }
  }
  g.putImageData(d, 0, 0);
  return c;
}

function drawOverlay() {
  if (!state.mask) return;
  const c = $('overlay');
  const w = state.mask.width, h = state.mask.height;
  c.width = w;
  c.height = h;
  const g = c.getContext('2d');
  g.globalAlpha = 1;
  if (state.photo) g.drawImage(state.photo, 0, 0, w, h);
  else { g.fillStyle = '#000'; g.fillRect(0, 0, w, h); }
  g.globalAlpha = Number($('alpha').value) / 100;
  g.drawImage(focusedMask(), 0, 0);
  g.globalAlpha = 1;
  // persons numbered on the photo (1-based, as the cards)
  const res = state.result;
  if (res && res.persons) {
    const size = Math.max(12, Math.round(Math.max(w, h) / 30));
    g.font = `bold ${size}px system-ui, sans-serif`;
    g.textBaseline = 'top';
    res.persons.forEach((p, k) => {
      const [x0, y0] = p.bbox || [0, 0];
      const label = String(k + 1);
      const tw = g.measureText(label).width + 8;
      const on = state.focus && state.focus.person === k;
      g.fillStyle = on ? '#2a5bd7' : 'rgba(0,0,0,0.7)';
      g.fillRect(x0, y0, tw, size + 6);
      g.fillStyle = '#fff';
      g.fillText(label, x0 + 4, y0 + 3);
    });
  }
  c.dataset.focus = state.focus ? (state.focus.person !== undefined ? `person:${state.focus.person}` : `label:${state.focus.label}`) : '';
}

// ---- garments and suggestions ----------------------------------------------------------------------
function recoForm(withImage) {
  const f = new FormData();
  for (const k of ['style', 'occasion', 'season', 'k']) if ($(k).value !== '') f.append(k, $(k).value);
  if ($('refine').checked) f.append('refine', 'dark,small');
  if (withImage) f.append('image', state.file, state.file.name);
  else f.append('sha256', state.sha);
  return f;
}

async function refreshRecommendations() {
  if (!state.sha || !state.file) return;
  const seq = ++state.recoSeq;
  $('reco-status').textContent = 'Finding suggestions…';
  $('persons-panel').hidden = false;
  let r = await postForm('/recommend', recoForm(false));
  if (r.status === 404) r = await postForm('/recommend', recoForm(true)); // dropped from the cache: upload again
  if (seq !== state.recoSeq) return; // a newer request is on its way
  if (r.status !== 200) throw errorOf(r);
  renderPersons(r.json);
}

function renderPersons(res) {
  const box = $('persons');
  box.replaceChildren();
  const o = res.options;
  const opts = [o.style && `style ${o.style}`, o.occasion && `occasion ${o.occasion}`, o.season && `season ${o.season}`].filter(Boolean);
  $('reco-status').textContent = `${res.persons.length} person${res.persons.length === 1 ? '' : 's'} · ` +
    `${o.k} suggestion${o.k === 1 ? '' : 's'} each from ${res.catalog.items} catalogue items` + (opts.length ? ` · ${opts.join(', ')}` : '');
  if (!res.persons.length) box.append(el('p', { class: 'none' }, 'No person was found in this photo.'));
  for (const p of res.persons) {
    const card = el('article', { class: 'person', 'data-person': p.person },
      el('h3', {}, `${t('Person')} ${p.person + 1}`, el('span', { class: 'muted' }, ` · score ${p.score.toFixed(2)} · ${p.area} px`)));
    card.append(el('h4', {}, 'Garments'));
    if (!p.garments.length) card.append(el('p', { class: 'none' }, 'no garment recognised'));
    for (const g of p.garments) {
      const row = el('div', { class: 'garment' }, el('span', { class: 'name' }, g.category), el('span', { class: 'muted' }, `${g.slot} · ${pct(g.share_of_person)}`));
      for (const c of g.colours) row.append(el('span', { class: 'colour' }, swatch(c.hex, `${c.name} ${c.hex}`), `${c.name} ${Math.round(100 * c.share)}%`));
      card.append(row);
    }
    card.append(el('h4', {}, 'Suggestions'));
    if (!p.recommendations.length) card.append(el('p', { class: 'none' }, 'no suggestion'));
    for (const r of p.recommendations) {
      card.append(el('div', { class: 'recommendation' },
        swatch(r.item.hex, r.item.colour, true),
        el('span', { class: 'item' }, r.item.name, el('span', { class: 'muted' }, ` · ${r.item.category} · ${r.item.price.toFixed(2)}`)),
        el('span', { class: 'score', title: 'score' }, r.score.toFixed(2)),
        el('span', { class: 'reason' }, r.reason)));
    }
    card.addEventListener('mouseenter', () => { state.focus = { person: p.person }; drawOverlay(); });
    card.addEventListener('mouseleave', () => { if (state.focus && state.focus.person === p.person) { state.focus = null; drawOverlay(); } });
    box.append(card);
  }
}

// ---- wiring ----------------------------------------------------------------------------------------
function pick(files) {
  if (!files || !files.length) return;
  analyse(files[0]);
}

function init() {
  setState('idle');
  const dz = $('dropzone');
  $('file').addEventListener('change', (e) => { pick(e.target.files); e.target.value = ''; });
  dz.addEventListener('dragover', (e) => { e.preventDefault(); dz.classList.add('over'); });
  dz.addEventListener('dragleave', () => dz.classList.remove('over'));
  dz.addEventListener('drop', (e) => { e.preventDefault(); dz.classList.remove('over'); pick(e.dataTransfer.files); });
  dz.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('file').click(); } });
  $('alpha').addEventListener('input', drawOverlay);
  $('lang').addEventListener('click', () => {
    state.lang = state.lang === 'zh' ? 'en' : 'zh';
    localStorage.setItem('m2fp-lang', state.lang);
    applyLang();
  });
  applyLang();
  for (const id of ['style', 'occasion', 'season', 'k'])
    $(id).addEventListener('change', () => refreshRecommendations().catch((e) => showError(e.message)));
  loadHealth();
}

init();
