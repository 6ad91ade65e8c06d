// web/app.js: the m2fp page. Upload (or drop) a photo -> POST /jobs (upload progress), poll
// GET /jobs/{id} (queued / parsing progress) -> draw the coloured parsing over the photo with a legend
// -> POST /recommend with the photo's SHA-256 (no second upload while the server has it cached) ->
// each person's garments with colour swatches and the suggestions with their reasons.
// document.body.dataset.state says where the page is (idle | working | done | error); tests wait on it.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { file: null, sha: null, result: null, photo: null, mask: null, recoSeq: 0 };

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
  state.file = file;
  state.sha = null;
  $('result').hidden = true;
  $('persons-panel').hidden = true;
  const t0 = performance.now();
  try {
    const form = new FormData();
    form.append('task', 'predict');
    if ($('refine').checked) form.append('refine', 'dark,small');
    form.append('image', file, file.name);
    setProgress(0, 'Uploading…');
    const r = await postForm('/jobs', form, (p) => setProgress(p * 0.25, `Uploading ${p.toFixed(0)} %`));
    if (r.status !== 202) throw errorOf(r);
    state.sha = r.json.image.sha256;
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
    state.result = job.result;
    setProgress(90, 'Drawing…');
    await renderParsing(file, job.result);
    await refreshRecommendations();
    hideProgress();
    setState('done');
  } catch (e) {
    hideProgress();
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

  const legend = $('legend');
  legend.replaceChildren();
  for (const l of res.legend) legend.append(el('li', {}, swatch(l.color, l.label), el('span', {}, l.label), el('span', { class: 'share' }, pct(l.fraction))));
  if (!res.legend.length) legend.append(el('li', { class: 'none' }, 'nothing but background'));

  const t = res.timings_ms;
  $('result-meta').textContent = `${res.image.width}×${res.image.height} · ${res.persons.length} person${res.persons.length === 1 ? '' : 's'} · ` +
    (res.cached ? 'from the cache' : `parsed in ${(t.engine / 1000).toFixed(2)} s`);
  $('result').hidden = false;
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
  g.drawImage(state.mask, 0, 0);
  g.globalAlpha = 1;
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
      el('h3', {}, `Person ${p.person + 1}`, el('span', { class: 'muted' }, ` · score ${p.score.toFixed(2)} · ${p.area} px`)));
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
  for (const id of ['style', 'occasion', 'season', 'k'])
    $(id).addEventListener('change', () => refreshRecommendations().catch((e) => showError(e.message)));
  loadHealth();
}

init();
