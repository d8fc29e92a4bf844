#!/usr/bin/env node
/* tokenizer_hf.js - the HF tokenizers baseline for bench-tokenizer: same text, same passes
 * rule, same output line. Run it single-threaded:
 *   RAYON_RS_NUM_CPUS=1 RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false UV_THREADPOOL_SIZE=1 \
 *     node bench/tokenizer_hf.js --oracle DIR --tokenizer FILE --data PROMPTS.json \
 *     [--mode concat|prompts] [--secs S]
 * DIR holds node_modules/@anush008/tokenizers (npm install @anush008/tokenizers@0.6.0).
 */
'use strict';
const fs = require('fs');
const path = require('path');

const a = { oracle: '/tmp/oracle', mode: 'concat', secs: 3 };
const v = process.argv.slice(2);
for (let i = 0; i + 1 < v.length; i += 2) a[v[i].replace(/^--/, '')] = v[i + 1];
if (!a.tokenizer || !a.data) {
  console.error('usage: tokenizer_hf.js --oracle DIR --tokenizer FILE --data PROMPTS.json [--mode concat|prompts] [--secs S]');
  process.exit(2);
}
const { Tokenizer } = require(path.join(path.resolve(a.oracle), 'node_modules/@anush008/tokenizers'));

const prompts = [];
for (const rec of JSON.parse(fs.readFileSync(a.data, 'utf8'))) {
  for (const c of rec.conversations || []) if (c.from === 'human' && typeof c.value === 'string') prompts.push(c.value);
  if (typeof rec.instruction === 'string') prompts.push(rec.instruction);
}
const text = prompts.join('\n\n');
const promptBytes = prompts.map((p) => Buffer.byteLength(p, 'utf8'));

(async () => {
  const tok = Tokenizer.fromFile(a.tokenizer);
  const secs = parseFloat(a.secs);
  let tokens = 0, bytes = 0, passes = 0, el;
  const t0 = process.hrtime.bigint();
  do {
    if (a.mode === 'concat') {
      tokens += (await tok.encode(text, null, { addSpecialTokens: false })).getLength();
      bytes += Buffer.byteLength(text, 'utf8');
    } else {
      for (let i = 0; i < prompts.length; i++) {
        tokens += (await tok.encode(prompts[i], null, { addSpecialTokens: false })).getLength();
        bytes += promptBytes[i];
      }
    }
    passes++;
    el = Number(process.hrtime.bigint() - t0) / 1e9;
  } while (el < secs);
  console.log(`hf mode=${a.mode} prompts=${prompts.length} bytes/pass=${Math.round(bytes / passes)} ` +
    `tokens/pass=${Math.round(tokens / passes)} passes=${passes} MB/s=${(bytes / el / 1e6).toFixed(2)} ` +
    `tokens/s=${Math.round(tokens / el)}`);
})();
