// openai_client.mjs - the official OpenAI client library (npm openai, installed by
// scripts/fetch_assets.sh) against a running cinder: completions and chat, streaming and
// not, usage, stop strings and errors. Exits non-zero on the first failed check.
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
await assert.rejects(client.completions.create({ model, prompt: 'x', n: 2 }), (e) => e.status === 400);
await assert.rejects(client.chat.completions.create({ model, messages: [{ role: 'wizard', content: 'x' }] }),
                     (e) => e.status === 400);
ok('errors: 404 unknown model, 400 bad values, in OpenAI\'s shape');
console.log(`${checks} passed, 0 failed`);
