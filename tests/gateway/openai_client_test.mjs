// The official OpenAI Node.js client library against a running gateway (started by
// gateway_test, which passes GATEWAY_URL and NODE_PATH): chat and completions, sync and
// streamed, the model list, and an unknown model. The gateway routes model "echo" to the echo
// test backend, which answers with the prompt's own words. Exits 0 when every check passes.
import { createRequire } from 'node:module';

// ES modules ignore NODE_PATH; require() follows it.
const require = createRequire(import.meta.url);
const openai = require('openai');
const OpenAI = openai.OpenAI ?? openai.default ?? openai;

const client = new OpenAI({
  baseURL: `${process.env.GATEWAY_URL}/v1`,
  apiKey: 'unused',
  maxRetries: 0,
  timeout: 30_000,
});

const failures = [];
function check(ok, what) {
  if (!ok) failures.push(what);
}

const chat = await client.chat.completions.create({
  model: 'echo',
  messages: [{ role: 'user', content: 'hello from node' }],
});
check(chat.choices[0].message.content === 'hello from node',
      `chat: got ${JSON.stringify(chat.choices[0].message)}`);

const chatStream = await client.chat.completions.create({
  model: 'echo',
  messages: [{ role: 'user', content: 'streamed words from node' }],
  stream: true,
});
let streamed = '';
for await (const chunk of chatStream) streamed += chunk.choices[0]?.delta?.content ?? '';
check(streamed === 'streamed words from node', `chat stream: got ${JSON.stringify(streamed)}`);

const completion = await client.completions.create({ model: 'echo', prompt: 'once upon a time' });
check(completion.choices[0].text === 'once upon a time',
      `completion: got ${JSON.stringify(completion.choices[0])}`);

const completionStream = await client.completions.create({
  model: 'echo',
  prompt: 'a streamed prompt',
  stream: true,
});
let text = '';
for await (const chunk of completionStream) text += chunk.choices[0]?.text ?? '';
check(text === 'a streamed prompt', `completion stream: got ${JSON.stringify(text)}`);

const ids = [];
for await (const model of client.models.list()) ids.push(model.id);
check(ids.includes('echo'), `models: got ${JSON.stringify(ids)}`);

try {
  await client.chat.completions.create({
    model: 'no-such-model',
    messages: [{ role: 'user', content: 'hi' }],
  });
  check(false, 'unknown model: no error');
} catch (e) {
  check(e.status === 404 && e.code === 'model_not_found',
        `unknown model: got ${e.status} ${e.code} ${e.message}`);
}

if (failures.length > 0) {
  console.error(`openai client: ${failures.length} check(s) failed:\n${failures.join('\n')}`);
  process.exit(1);
}
console.log('openai client: every check passed');
