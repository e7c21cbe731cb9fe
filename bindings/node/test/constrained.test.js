'use strict';
// Constrained output and log probabilities on the default model: `constraint` and its shorthands
// (`jsonSchema`, `grammar`, `regex`, `choices`) in Model and Engine, streamed and whole;
// `logprobs` in results, stream results and an engine's onToken; bad constraints reject with
// WOOLLY_ERR_INVALID_ARGUMENT before anything is generated.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Model, Engine, WoollyError } = require('woolly');

const PERSON = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'age', 'city'],
  properties: {
    name: { type: 'string', maxLength: 30 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    city: { type: 'string', maxLength: 30 },
  },
};
const PHONE = String.raw`\(\d{3}\) \d{3}-\d{4}`;
const PHONE_RE = /^\(\d{3}\) \d{3}-\d{4}$/;
const invalid = (needle) => (e) => {
  assert.ok(e instanceof WoollyError, `a WoollyError: ${e}`);
  assert.equal(e.code, 'WOOLLY_ERR_INVALID_ARGUMENT', e.message);
  assert.ok(e.message.includes(needle), `${JSON.stringify(needle)} in ${e.message}`);
  return true;
};

let model;
before(async () => {
  model = await Model.load(undefined, { contextSize: 1024 });
});
after(() => model && model.close());

const ask = (content) => [{ role: 'user', content }];

function assertPerson(text) {
  const v = JSON.parse(text);
  assert.equal(typeof v, 'object', text);
  assert.deepEqual(Object.keys(v).sort(), ['age', 'city', 'name'], text);
  assert.equal(typeof v.name, 'string', text);
  assert.equal(typeof v.city, 'string', text);
  assert.ok(Number.isInteger(v.age) && v.age >= 0 && v.age <= 120, text);
}

test('a JSON schema shapes the output, greedy and sampled, as jsonSchema or constraint', async () => {
  for (const sampling of [{ temperature: 0 }, { temperature: 0.9, seed: 11 }]) {
    const a = await model.chat(ask('Describe a person who lives in Paris.'), { ...sampling, maxTokens: 200, jsonSchema: PERSON });
    assertPerson(a);
    const b = await model.chat(ask('Describe a person who lives in Paris.'), {
      ...sampling,
      maxTokens: 200,
      constraint: { json_schema: PERSON },
    });
    assertPerson(b);
    if (sampling.temperature === 0) assert.equal(b, a, 'the same constraint, spelled twice');
  }
  // Its JSON text too, and any JSON object.
  assertPerson(await model.chat(ask('Describe a person.'), { temperature: 0, maxTokens: 200, jsonSchema: JSON.stringify(PERSON) }));
  const obj = await model.chat(ask('Answer in JSON with the key "answer": what is 2+2?'), {
    temperature: 0,
    maxTokens: 200,
    constraint: 'json_object',
  });
  assert.equal(typeof JSON.parse(obj), 'object', obj);
});

test('a regex, a GBNF grammar and choices shape the output, also streamed', async () => {
  const r = await model.complete('My phone number is', { temperature: 0, maxTokens: 40, regex: PHONE });
  assert.match(r.text, PHONE_RE);
  assert.equal(r.stopReason, 'end_of_generation');
  let streamed = '';
  for await (const piece of model.chatStream(ask('Give a US phone number.'), { temperature: 0, maxTokens: 40, regex: PHONE })) {
    streamed += piece;
  }
  assert.match(streamed, PHONE_RE);

  const gbnf = 'root ::= "Words: " word ("," " "? word){0,2} "."\nword ::= [a-z]{1,10}\n';
  const words = await model.chat(ask('Name some animals.'), { seed: 3, maxTokens: 60, grammar: gbnf });
  assert.match(words, /^Words: [a-z]{1,10}(, ?[a-z]{1,10}){0,2}\.$/);

  const options = ['positive', 'negative', 'neutral'];
  for (const sampling of [{ temperature: 0 }, { temperature: 1, seed: 5 }]) {
    assert.ok(options.includes(await model.chat(ask('Sentiment of: I love this!'), { ...sampling, choices: options })));
    assert.ok(
      options.includes(await model.chat(ask('Sentiment of: I love this!'), { ...sampling, constraint: { choice: options } })),
    );
  }
});

test('logprobs: each token, its log probability and the alternatives, best first', async () => {
  const r = await model.complete('The capital of France is', { temperature: 0, maxTokens: 6, logprobs: 3 });
  assert.equal(r.logprobs.length, r.generatedIds.length);
  r.logprobs.forEach((lp, i) => {
    assert.deepEqual(Object.keys(lp).sort(), ['bytes', 'id', 'logprob', 'token', 'topLogprobs']);
    assert.equal(lp.id, r.generatedIds[i]);
    assert.ok(lp.logprob <= 0);
    assert.equal(lp.token, Buffer.from(lp.bytes).toString('utf8'));
    assert.equal(lp.topLogprobs.length, 3);
    for (let j = 1; j < 3; j++) assert.ok(lp.topLogprobs[j - 1].logprob >= lp.topLogprobs[j].logprob);
    // Greedy: the chosen token is the most likely.
    assert.equal(lp.topLogprobs[0].id, lp.id);
  });
  assert.equal(Buffer.concat(r.logprobs.map((lp) => Buffer.from(lp.bytes))).toString('utf8'), r.text);
  // A stream's result carries them; without the option, none.
  const s = model.stream('The capital of France is', { temperature: 0, maxTokens: 6, logprobs: 0 });
  for await (const _ of s);
  assert.deepEqual((await s.result).logprobs.map((lp) => lp.topLogprobs), [[], [], [], [], [], []]);
  assert.equal((await model.complete('The capital of France is', { temperature: 0, maxTokens: 2 })).logprobs, undefined);
});

test('an engine batches constrained requests; onToken gets the logprobs', async () => {
  const engine = new Engine(model, { threads: 2, contextSize: 512 });
  try {
    const seen = [];
    const [phone, person, free] = await Promise.all([
      engine.submit(ask('Give a US phone number.'), {
        temperature: 0,
        maxTokens: 40,
        regex: PHONE,
        logprobs: 2,
        onToken: (text, token) => seen.push(token),
      }),
      engine.submit(ask('Describe a person who lives in Paris.'), { temperature: 0, maxTokens: 200, jsonSchema: PERSON }),
      engine.submit('The capital of France is', { temperature: 0, maxTokens: 8 }),
    ]);
    assert.match(phone.text, PHONE_RE);
    assert.equal(phone.text, await model.chat(ask('Give a US phone number.'), { temperature: 0, maxTokens: 40, regex: PHONE }));
    assert.equal(phone.logprobs.length, phone.generatedIds.length);
    assert.ok(seen.length > 0 && seen.every((t) => t.logprob && t.logprob.id === t.id && t.logprob.topLogprobs.length === 2));
    assertPerson(person.text);
    assert.equal(free.logprobs, undefined);
    // A bad constraint rejects that request alone.
    await assert.rejects(engine.submit('x', { regex: '(unclosed' }), invalid('regular expression'));
    assert.match((await engine.submit(ask('Give a US phone number.'), { temperature: 0, maxTokens: 40, regex: PHONE })).text, PHONE_RE);
  } finally {
    await engine.close();
  }
});

test('bad constraints and logprobs reject before generating', async () => {
  const cases = [
    [{ jsonSchema: { type: 'array', uniqueItems: true } }, 'uniqueItems'],
    [{ jsonSchema: '{not json' }, 'JSON'],
    [{ jsonSchema: 42 }, 'jsonSchema'],
    [{ grammar: 'root ::= ("a"\n' }, 'GBNF'],
    [{ grammar: 'start ::= "a"\n' }, 'root'],
    [{ grammar: 5 }, 'grammar'],
    [{ regex: '(unclosed' }, 'regular expression'],
    [{ choices: [] }, 'choice'],
    [{ choices: 'yes' }, 'choices'],
    [{ constraint: { pattern: 'x' } }, 'constraint'],
    [{ constraint: 'json' }, 'constraint'],
    [{ constraint: 5 }, 'constraint'],
    [{ constraint: { regex: 5 } }, 'constraint'],
    [{ regex: 'a', choices: ['a'] }, 'at most one'],
    [{ logprobs: 21 }, '20'],
    [{ logprobs: -1 }, 'logprobs'],
  ];
  for (const [options, needle] of cases) {
    let tokens = 0;
    const s = model.stream('x', { maxTokens: 4, ...options });
    await assert.rejects(async () => {
      for await (const _ of s) tokens++;
    }, invalid(needle));
    assert.equal(tokens, 0, JSON.stringify(options));
    await assert.rejects(model.generate('x', { maxTokens: 4, ...options }), invalid(needle));
  }
  assert.ok((await model.generate('x', { maxTokens: 1, temperature: 0 })).length >= 0, 'the model is still usable');
});
