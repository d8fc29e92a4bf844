#!/usr/bin/env node
/* gen_golden.js - writes the tokenizer golden vectors tests/data/tok/<name>.jsonl with the HF
 * tokenizers library (Rust, through its Node binding) as the oracle. Each line:
 *   {"text": T, "ids": encode(T) without special tokens, "bos": ids with them (first 8 lines
 *    and every 50th), "dec": decode(ids) when it differs from T}
 * The texts are deterministic (seeded): hand-written edge cases, slices of real prompts from
 * ../shared/data, fragment mixes with special-token strings, and random Unicode.
 * variant_<name>.jsonl: a fifth of the texts on a base tokenizer with some components replaced
 * (first line {"variant": {"base", "patch"}}), for components the real files do not use.
 *
 * Usage (the oracle is not a project dependency; install it in a scratch directory):
 *   mkdir -p /tmp/oracle && (cd /tmp/oracle && npm install @anush008/tokenizers@0.6.0)
 *   node scripts/gen_golden.js --oracle /tmp/oracle --data /work/shared/data \
 *       --tok llama2=models/stories15M/tokenizer.json --tok llama3=build/assets/llama3/tokenizer.json \
 *       --tok qwen3=build/assets/qwen3/tokenizer.json
 * A tokenizer named in EXTRA also gets that list's texts (after the common ones).
 */
'use strict';
const fs = require('fs');
const path = require('path');

function args() {
  const a = { oracle: '/tmp/oracle', data: '../shared/data', out: 'tests/data/tok', toks: [], n: 2400 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '--oracle') a.oracle = v[++i];
    else if (v[i] === '--data') a.data = v[++i];
    else if (v[i] === '--out') a.out = v[++i];
    else if (v[i] === '--n') a.n = parseInt(v[++i], 10);
    else if (v[i] === '--tok') { const [name, file] = v[++i].split('='); a.toks.push({ name, file }); }
    else throw new Error('unknown argument ' + v[i]);
  }
  if (!a.toks.length) throw new Error('give at least one --tok name=tokenizer.json');
  return a;
}

/* mulberry32: small seeded PRNG, so the vectors are the same on every run */
function rng(seed) {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIXED = [
  '', ' ', '  ', '\n', '\t', '\r\n', ' \n ', 'a', 'Hello', ' Hello', 'Hello world', 'Once upon a time',
  'Hello, world! How are you doing today?', "I'm sure they'll say it's fine, won't they? We'd've LOVED it. 'S 'T 'RE",
  'The quick brown fox jumps over the lazy dog.\n\nThe end.', '   leading and trailing   ',
  'tabs\tand\nnewlines\r\nand\u000bvertical\u000cfeeds', '1234567890 3.14159 -42 1e10 0x1F 1,000,000',
  'def f(x):\n    return x * 2  # double\n\nprint(f(21))\n', 'int main(void) { return printf("%d\\n", 1 << 4); }',
  '{"key": [1, 2.5, "three", null, true], "nested": {"a": "b\\"c"}}',
  '<s>', '</s>', '<unk>', '<s>Hello</s>', 'Hello <s> world </s> again', ' <s> ', '<s><s></s>',
  '<|begin_of_text|>', '<|begin_of_text|>Hello<|eot_id|>', 'x<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>',
  '<|reserved_special_token_0|><|reserved_special_token_250|>', '<|notatoken|> <|eot_id', '<<s>>', '<|<|eot_id|>|>',
  '日本語のテキストです。東京は大きい都市です。', '中文文本，包括标点符号！', '한국어 텍스트입니다.',
  'Привет, как дела? Всё хорошо.', 'مرحبا بالعالم، كيف حالك؟', 'नमस्ते दुनिया, आप कैसे हैं?',
  'Ελληνικά γράμματα', 'עברית טקסט', 'ภาษาไทย', 'Tiếng Việt có dấu', 'Ünïcödé çàfé naïve résumé',
  '😀😃😄😁 🎉🎊', '👨‍👩‍👧‍👦 family', '🏳️‍🌈 flag', '👍🏽 thumbs', '🇺🇸🇯🇵 flags', '❤️‍🔥',
  'e\u0301 a\u0300 o\u0308 combining', 'Z\u0351\u0362\u0338a\u0337l\u0321g\u0335o', '\u200b\u200c\u200d zero width',
  '\u00a0non\u00a0breaking\u2003em\u3000ideographic', '\u2028line\u2029para', '\u0085next line',
  ' '.repeat(50), '\n'.repeat(20), ' \n'.repeat(15), '\t\t\t\tx', '.'.repeat(40), '=-'.repeat(30),
  'a'.repeat(300), '▁', '▁▁ ▁', 'x▁y', '\u2581Hello', '\ufffd replacement', '\ufeffBOM',
  'https://example.com/path?q=1&r=two#frag', 'user@example.com', '$100.00 €50 £30 ¥1000',
  'C:\\Windows\\System32', '¿Qué? ¡Sí!', "''''", '"""quoted"""', '...!!!???', '----', '\\u0041',
];

const FRAGMENTS = [
  'the', ' the', 'The', ' of', ' and', 'ing', ' tokenizer', ' Hello', 'world', '!', '?', ',', '.', ' ', '  ',
  '\n', '\n\n', '\t', '123', '4567', '3.14', '-', '_', '(', ')', '{', '}', '[', ']', '"', "'s", "'ll", "'S",
  '<s>', '</s>', '<unk>', '<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>', '<|start_header_id|>',
  '<|end_header_id|>', '<|', '|>', '<', '>', 'é', 'ñ', 'ü', '日本', '語', '中文', 'Привет', 'мир', 'مرحبا',
  'नमस्ते', '😀', '👨‍👩‍👧', '🇫🇷', 'e\u0301', '\u200d', '\u00a0', '\u3000', '▁', '\r\n', '    ', 'αβγ',
  'def', ' return', ' {', '};', '=>', '==', '!=', '&&', '||', '//', '/*', '*/', '#include', '0x', 'FF',
];

/* Texts for one tokenizer only (appended, so the other files stay as they were): Qwen's NFC
 * normalizer on compositions, singletons, canonical reordering, composition exclusions,
 * Hangul jamo, and combining marks next to special tokens and at the start. */
const EXTRA = {
  qwen3: [
    '<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n', '<|endoftext|>', '<|im_end|>x',
    '<think>\n\n</think>\n\n', '<tool_call>{"a": 1}</tool_call>', '<|im_start|>\u0301', '\u0301<|im_end|>',
    'e\u0301', 'A\u030a \u212b \u2126 \u212a', 'a\u0302\u0323 a\u0323\u0302 q\u0307\u0323',
    '\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af', '\uac00\u11a8', '\u0958\u0959 \u0915\u093c',
    '\uf900\uf901 \u2f800 \ufb2a \ufb1d', '\u0344 \u0340\u0341 \u0374 \u037e \u0387', '\u0301start',
    'o\u0308\u0304 \u01ea\u0304 \u1e9b\u0323', '\u00c5\u0301 \u0041\u030a\u0301', 'cafe\u0301 re\u0301sume\u0301',
    '\u0928\u093c \u0929 \u09c7\u09be \u0b47\u0b3e \u0dd9\u0dcf', '\u1025\u102e \u1b05\u1b35',
    '\u0e40\u0e01\u0e48\u0e32 \u0f73 \u0f75 \u0f81', 'Z\u0351\u0362\u0338a\u0337l\u0321g\u0335o\u0301',
  ],
};

/* Code point ranges for random Unicode: assigned blocks of many scripts plus symbols. */
const RANGES = [
  [0x20, 0x7e], [0xa0, 0x24f], [0x300, 0x36f], [0x370, 0x3ff], [0x400, 0x4ff], [0x530, 0x58f],
  [0x590, 0x5ff], [0x600, 0x6ff], [0x900, 0x97f], [0x980, 0x9ff], [0xe00, 0xe7f], [0x10a0, 0x10ff],
  [0x1100, 0x11ff], [0x1e00, 0x1eff], [0x2000, 0x206f], [0x2070, 0x209f], [0x20a0, 0x20cf],
  [0x2100, 0x214f], [0x2190, 0x21ff], [0x2200, 0x22ff], [0x2500, 0x257f], [0x2600, 0x26ff],
  [0x3000, 0x303f], [0x3040, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xff00, 0xffef],
  [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x1f900, 0x1f9ff], [0x10000, 0x1007f], [0x1d400, 0x1d7ff],
  [0x1, 0x1f], [0xe000, 0xe0ff], [0x20000, 0x2a6df],
];

function randomUnicode(r, len) {
  let s = '';
  for (let i = 0; i < len; i++) {
    const [lo, hi] = RANGES[Math.floor(r() * RANGES.length)];
    let cp = lo + Math.floor(r() * (hi - lo + 1));
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;
    s += String.fromCodePoint(cp);
  }
  return s;
}

function realTexts(dir) {
  const out = [];
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
    for (const rec of JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))) {
      if (rec.conversations) for (const c of rec.conversations) out.push(c.value);
      if (rec.instruction) out.push(rec.instruction);
      if (rec.output) out.push(rec.output);
    }
  }
  return out.filter((s) => typeof s === 'string' && s.length > 0);
}

/* a slice of at most MAX UTF-16 units, not cutting a surrogate pair */
function slice(s, start, max) {
  const cps = Array.from(s);
  const a = Math.min(start, cps.length);
  return cps.slice(a, a + max).join('');
}

function buildTexts(a) {
  const r = rng(20261121);
  const texts = FIXED.slice();
  const real = realTexts(a.data);
  const nReal = Math.floor(a.n * 0.45), nMix = Math.floor(a.n * 0.25);
  for (let i = 0; i < nReal; i++) {
    const s = real[Math.floor(r() * real.length)];
    const len = Array.from(s).length;
    const start = r() < 0.5 ? 0 : Math.floor(r() * len);
    texts.push(slice(s, start, 1 + Math.floor(r() * 600)));
  }
  for (let i = 0; i < nMix; i++) {
    let s = '';
    const k = 1 + Math.floor(r() * 24);
    for (let j = 0; j < k; j++) s += FRAGMENTS[Math.floor(r() * FRAGMENTS.length)];
    texts.push(s);
  }
  while (texts.length < a.n) texts.push(randomUnicode(r, 1 + Math.floor(r() * 48)));
  /* code points on which regex engines' Unicode data differ (scripts added after Unicode 14,
   * U+180E that PCRE2 calls a space), in the contexts of \p{L}, \p{N} and \s */
  const EDGE = [0x180e, 0x1c89, 0xa7cb, 0x105c0, 0x10d40, 0x11380, 0x13460, 0x16100, 0x16d40,
    0x1e5d0, 0x2ebf0, 0x31350, 0x1ccf0, 0x1e4f0, 0x11bf0, 0x2028, 0x85, 0x3000, 0x1f600];
  for (let i = 0; i < 120; i++) {
    const c = String.fromCodePoint(EDGE[i % EDGE.length] + Math.floor(r() * 8));
    texts.push(['a' + c + '1', c + ' ' + c + c + "'s", ' ' + c + '\n' + c, c + '2' + c + 'x', '  ' + c + '  x'][i % 5]);
  }
  /* a few long ones: many spaces, one long word, a long real text */
  texts.push(' '.repeat(3000) + 'x', 'ab'.repeat(2500), real.slice(0, 20).join('\n\n'));
  /* NUL cannot go through the C side's JSON reader (cJSON strings end at NUL) */
  return texts.map((s) => s.replace(/\u0000/g, ''));
}

/* Variants: a base tokenizer with top-level fields replaced ("added_tokens+" appends), to
 * cover components the two real files do not use. The test rebuilds each from the base file. */
const SP = '\u2581';
const VARIANTS = [
  { name: 'llama2_metaspace_first', base: 'llama2', patch: {
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: SP, prepend_scheme: 'first', split: false },
    decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' },
      { type: 'Metaspace', replacement: SP, prepend_scheme: 'first', split: false }, { type: 'Fuse' }] } } },
  { name: 'llama2_metaspace_split', base: 'llama2', patch: {
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: SP, prepend_scheme: 'always', split: true },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: SP }, content: ' ' },
      { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 2, stop: 0 }] } } },
  { name: 'llama2_added', base: 'llama2', extra: [
    'Hi <|user|> there', '  <|user|>  ', '<|user|><|user|>', 'say hello world twice: hello worldhello world',
    'a <tag> b', 'a<tag>b', '<tag>', 'x <tag>y', '_<tag> ', '\u00e9<tag>', 'hello world', ' hello world ',
    '<|user|>   <tag>   hello world<|user|>'],
    patch: { 'added_tokens+': [
      { id: 32000, content: '<|user|>', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true },
      { id: 32001, content: 'hello world', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
      { id: 32002, content: '<tag>', single_word: true, lstrip: false, rstrip: false, normalized: false, special: false }] } },
  { name: 'llama3_gpt2', base: 'llama3', patch: {
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true } } },
  { name: 'llama3_template', base: 'llama3', patch: {
    post_processor: { type: 'Sequence', processors: [
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      { type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: '<|end_of_text|>', type_id: 0 } }],
        pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: {
          '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>'] },
          '<|end_of_text|>': { id: '<|end_of_text|>', ids: [128001], tokens: ['<|end_of_text|>'] } } }] } } },
  { name: 'llama3_splits', base: 'llama3', patch: {
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Removed', invert: false },
      { type: 'Split', pattern: { Regex: '\\p{N}' }, behavior: 'MergedWithPrevious', invert: false },
      { type: 'Split', pattern: { String: 'e' }, behavior: 'MergedWithNext', invert: false },
      { type: 'Split', pattern: { Regex: '[aeiou]+' }, behavior: 'Contiguous', invert: true },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] } } },
];

function applyPatch(base, patch) {
  const t = JSON.parse(JSON.stringify(base));
  for (const [k, v] of Object.entries(patch)) {
    if (k.endsWith('+')) t[k.slice(0, -1)] = t[k.slice(0, -1)].concat(v);
    else t[k] = v;
  }
  return t;
}

async function vectors(tok, texts) {
  const lines = [];
  let nRt = 0;
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i];
    const ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
    const rec = { text, ids };
    if (i < 8 || i % 50 === 0) rec.bos = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
    const dec = await tok.decode(ids, false);
    if (dec !== text) rec.dec = dec;
    else nRt++;
    lines.push(JSON.stringify(rec));
  }
  return { lines, nRt };
}

async function main() {
  const a = args();
  const { Tokenizer } = require(path.join(path.resolve(a.oracle), 'node_modules/@anush008/tokenizers'));
  const texts = buildTexts(a);
  fs.mkdirSync(a.out, { recursive: true });
  const files = {};
  for (const { name, file } of a.toks) {
    files[name] = file;
    const { lines, nRt } = await vectors(Tokenizer.fromFile(file), texts.concat(EXTRA[name] || []));
    const out = path.join(a.out, name + '.jsonl');
    fs.writeFileSync(out, lines.join('\n') + '\n');
    console.log(`${out}: ${lines.length} texts, ${nRt} round-trip`);
  }
  const os = require('os');
  for (const v of VARIANTS) {
    if (!files[v.base]) continue;
    const tmp = path.join(os.tmpdir(), `cinder_variant_${v.name}.json`);
    fs.writeFileSync(tmp, JSON.stringify(applyPatch(JSON.parse(fs.readFileSync(files[v.base], 'utf8')), v.patch)));
    const sub = texts.filter((_, i) => i % 5 === 0).concat(v.extra || []);
    const { lines, nRt } = await vectors(Tokenizer.fromFile(tmp), sub);
    fs.unlinkSync(tmp);
    const out = path.join(a.out, `variant_${v.name}.jsonl`);
    const head = JSON.stringify({ variant: { base: v.base, patch: v.patch } });
    fs.writeFileSync(out, head + '\n' + lines.join('\n') + '\n');
    console.log(`${out}: ${lines.length} texts, ${nRt} round-trip`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
