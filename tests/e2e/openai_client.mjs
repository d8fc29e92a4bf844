// openai_client.mjs - the official OpenAI client library (npm openai, installed by
// scripts/fetch_assets.sh) against a running cinder: completions and chat, streaming and
// not, usage, stop strings, logprobs, n choices and errors. Exits non-zero on the first
// failed check.
//   node tests/e2e/openai_client.mjs PORT MODEL
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const OpenAI = require(process.cwd() + '/build/assets/node/node_modules/openai');
const [port, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'none', maxRetries: 0 });
let checks = 0;
const ok = (what) => { checks++; console.log(`ok ${checks} - ${what}`); };

const models = await client.models.list();
assert.equal(models.data[0].id, model);
ok('models.list names the served model');

const c = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 40, temperature: 0 });
assert.ok(c.choices[0].text.startsWith(', there was a little girl named Lily.'), c.choices[0].text);
assert.equal(c.choices[0].finish_reason, 'length');
assert.deepEqual(c.usage, { prompt_tokens: 5, completion_tokens: 40, total_tokens: 45,
                           prompt_tokens_details: { cached_tokens: 0 } });
ok('completions: the golden continuation, usage');

let streamed = '', usage = null, finish = null;
const s = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 40, temperature: 0,
                                            stream: true, stream_options: { include_usage: true } });
for await (const chunk of s) {
  if (chunk.usage) usage = chunk.usage;
  for (const ch of chunk.choices) { streamed += ch.text; if (ch.finish_reason) finish = ch.finish_reason; }
}
assert.equal(streamed, c.choices[0].text);
assert.equal(finish, 'length');
assert.equal(usage.completion_tokens, 40);
ok('completions stream: same text, finish_reason, include_usage');

const stop = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 40,
                                               temperature: 0, stop: ['Lily', 'zzz'] });
assert.equal(stop.choices[0].text, ', there was a little girl named ');
assert.equal(stop.choices[0].finish_reason, 'stop');
ok('completions: stop strings');

const msgs = [{ role: 'system', content: 'Tell a story.' }, { role: 'user', content: 'Once upon a time' }];
const chat = await client.chat.completions.create({ model, messages: msgs, max_tokens: 24, temperature: 0 });
assert.equal(chat.choices[0].message.role, 'assistant');
assert.ok(chat.choices[0].message.content.length > 0);
assert.equal(chat.usage.completion_tokens, 24);
ok('chat: an assistant message');

let chatText = '', role = null;
const cs = await client.chat.completions.create({ model, messages: msgs, max_tokens: 24, temperature: 0, stream: true });
for await (const chunk of cs)
  for (const ch of chunk.choices) { if (ch.delta.role) role = ch.delta.role; chatText += ch.delta.content ?? ''; }
assert.equal(role, 'assistant');
assert.equal(chatText, chat.choices[0].message.content);
ok('chat stream: the same text');

const seeded = { model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0.8, top_p: 0.9, seed: 42 };
const a = await client.completions.create(seeded), b = await client.completions.create(seeded);
assert.equal(a.choices[0].text, b.choices[0].text);
ok('sampling with a seed is reproducible');

await assert.rejects(client.completions.create({ model: 'no-such-model', prompt: 'x' }),
                     (e) => e.status === 404 && /does not exist/.test(e.message));
await assert.rejects(client.completions.create({ model, prompt: 'x', max_tokens: -3 }),
                     (e) => e.status === 400 && /max_tokens/.test(e.message));
await assert.rejects(client.completions.create({ model, prompt: 'x', n: 0 }), (e) => e.status === 400);
await assert.rejects(client.chat.completions.create({ model, messages: msgs, response_format: { type: 'json_object' } }),
                     (e) => e.status === 400 && e.param === 'response_format');
await assert.rejects(client.chat.completions.create({ model, messages: [{ role: 'wizard', content: 'x' }] }),
                     (e) => e.status === 400);
ok('errors: 404 unknown model, 400 bad values, in OpenAI\'s shape');
const lc = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 6, temperature: 0,
                                            logprobs: 3, n: 2 });
assert.equal(lc.choices.length, 2);
assert.equal(lc.choices[1].index, 1);
assert.equal(lc.choices[0].text, lc.choices[1].text);
const clp = lc.choices[0].logprobs;
assert.equal(clp.tokens.join(''), lc.choices[0].text);
assert.equal(clp.token_logprobs.length, 6);
assert.equal(Object.keys(clp.top_logprobs[0]).length, 3);
assert.equal(Math.max(...Object.values(clp.top_logprobs[0])), clp.token_logprobs[0]);
assert.deepEqual(clp.text_offset.slice(0, 2), [0, clp.tokens[0].length]);
ok('completions: logprobs (tokens, token_logprobs, top_logprobs, text_offset) and n = 2');

const lchat = await client.chat.completions.create({ model, messages: msgs, max_tokens: 5, temperature: 0,
                                                     logprobs: true, top_logprobs: 2 });
const content = lchat.choices[0].logprobs.content;
assert.equal(content.map((t) => t.token).join(''), lchat.choices[0].message.content);
for (const t of content) {
  assert.equal(t.top_logprobs.length, 2);
  assert.equal(t.top_logprobs[0].logprob, t.logprob);
  assert.ok(t.top_logprobs[1].logprob <= t.logprob);
  assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')]);
}
ok('chat: logprobs content with bytes and top_logprobs');

const per = [[], []], lps = [[], []];
const sn = await client.chat.completions.create({ model, messages: msgs, max_tokens: 5, temperature: 0, n: 2,
                                                 logprobs: true, stream: true });
for await (const chunk of sn)
  for (const ch of chunk.choices) {
    per[ch.index].push(ch.delta.content ?? '');
    for (const t of ch.logprobs?.content ?? []) lps[ch.index].push(t.logprob);
  }
assert.equal(per[0].join(''), lchat.choices[0].message.content);
assert.equal(per[1].join(''), per[0].join(''));
assert.deepEqual(lps[0], content.map((t) => t.logprob));
ok('chat stream: n = 2 by index, logprobs as not streamed');
console.log(`${checks} passed, 0 failed`);
