// Tests of the secret ballot's browser side, in node (`npm ci && node test.mjs`): ballots
// of every allowed mark vector encrypt, verify and decrypt to their marks; forbidden ones
// are refused; tampering fails; the form's script posts a ballot that verifies. The
// verifier here mirrors `OneOf::verify` and `Ballot::verify` in src/core/secret.rs, and
// hashes with node's own SHA-512 and SHA-256, not the bundled ones.

import assert from 'node:assert/strict';
import { createHash, webcrypto } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import vm from 'node:vm';
import * as sb from './src/ballot.js';

const { G, L, Point, mul } = sb;
const BUNDLE = new URL('../../src/shell/http/secret-ballot.js', import.meta.url);

// --- An independent verifier, from the JSON the server reads -------------------------

const HEX = /^[0-9a-f]{64}$/;
function point(hex) {
  assert.match(hex, HEX, 'a point is 64 lowercase hex digits');
  return Point.fromHex(hex);
}
function scalar(hex) {
  assert.match(hex, HEX, 'a scalar is 64 lowercase hex digits');
  const s = BigInt('0x' + Buffer.from(hex, 'hex').reverse().toString('hex'));
  assert.ok(s < L, 'a scalar is reduced');
  return s;
}
const le = (n, len) => Buffer.from(n.toString(16).padStart(len * 2, '0'), 'hex').reverse();

/** `challenge` of secret.rs, with node's SHA-512. */
function challenge(context, points) {
  const h = createHash('sha512');
  h.update('councild secret ballot v1');
  h.update(le(BigInt(context.length), 8));
  h.update(context);
  for (const p of points) h.update(p.toBytes());
  return BigInt('0x' + h.digest().reverse().toString('hex')) % L;
}

/** `OneOf::verify`: each branch a Chaum–Pedersen proof, their challenges adding up to the hash. */
function verifyOneOf(context, pk, c, values, branches) {
  if (branches.length !== values.length) return false;
  const each = branches.every(
    (b, k) =>
      mul(G, b.response).equals(b.a.add(mul(c.alpha, b.challenge))) &&
      mul(pk, b.response).equals(b.b.add(mul(c.beta.subtract(mul(G, values[k])), b.challenge))),
  );
  const sum = branches.reduce((s, b) => s + b.challenge, 0n) % L;
  const points = [pk, c.alpha, c.beta, ...branches.flatMap((b) => [b.a, b.b])];
  return each && sum === challenge(context, points);
}

/** The JSON as `secret::Ballot` deserializes it: exactly these keys. */
function parse(json) {
  const v = JSON.parse(json);
  assert.deepEqual(Object.keys(v), ['choices', 'proofs', 'overall']);
  const branch = (b) => {
    assert.deepEqual(Object.keys(b), ['a', 'b', 'challenge', 'response']);
    return { a: point(b.a), b: point(b.b), challenge: scalar(b.challenge), response: scalar(b.response) };
  };
  return {
    choices: v.choices.map((c) => {
      assert.deepEqual(Object.keys(c), ['alpha', 'beta']);
      return { alpha: point(c.alpha), beta: point(c.beta) };
    }),
    proofs: v.proofs.map((p) => p.map(branch)),
    overall: v.overall.map(branch),
  };
}

/** `Ballot::verify`, with the weights and sums written out again. */
function verifyBallot(context, pk, shape, b) {
  const { choices, seats, blank } = shape;
  const ws = Array.from({ length: choices }, (_, i) => (blank && i === choices - 1 ? seats : 1));
  const total = b.choices.reduce(
    (t, c, i) => ({ alpha: t.alpha.add(mul(c.alpha, ws[i])), beta: t.beta.add(mul(c.beta, ws[i])) }),
    { alpha: Point.ZERO, beta: Point.ZERO },
  );
  const allowed = Array.from({ length: seats }, (_, i) => i + 1);
  return (
    b.choices.length === choices &&
    b.proofs.length === choices &&
    b.choices.every((c, i) => verifyOneOf(sub(context, `/choice/${i}/${choices}`), pk, c, [0, 1], b.proofs[i])) &&
    verifyOneOf(sub(context, `/overall/${choices}`), pk, total, allowed, b.overall)
  );
}

/** A proof's own context: the ballot's, then what it is about (written out again). */
function sub(context, suffix) {
  const tail = new TextEncoder().encode(suffix);
  const out = new Uint8Array(context.length + tail.length);
  out.set(context);
  out.set(tail, context.length);
  return out;
}

// --- The tests -------------------------------------------------------------------------

const x = sb.randomScalar();
const pk = mul(G, x);
const pkHex = sb.pointHex(pk);
const contextText = 'item-7/0/AFG';
const context = new TextEncoder().encode(contextText);

const SHAPES = [
  { choices: 3, seats: 1, blank: true },
  { choices: 4, seats: 3, blank: true },
];

/** Every vector of marks for `n` choices. */
const vectors = (n) => Array.from({ length: 2 ** n }, (_, v) => Array.from({ length: n }, (_, i) => (v >> i) & 1));
/** Whether the round allows the marks: 1 to the seats candidates, or blank alone. */
function allowed({ choices, seats, blank }, marks) {
  const candidates = marks.slice(0, blank ? choices - 1 : choices).reduce((a, b) => a + b, 0);
  const isBlank = blank && marks[choices - 1] === 1;
  return isBlank ? candidates === 0 : candidates >= 1 && candidates <= seats;
}

test('the challenge and tracker hash as secret.rs does', () => {
  const points = [G, pk, mul(G, 5)];
  assert.equal(sb.challenge(context, points), challenge(context, points));
  assert.equal(sb.challenge(new Uint8Array(), []), challenge(new Uint8Array(), []));
  const b = sb.encryptBallot(context, pk, SHAPES[0], [1, 0, 0]);
  const h = createHash('sha256');
  for (const c of b.choices) h.update(c.alpha.toBytes()).update(c.beta.toBytes());
  assert.equal(sb.tracker(b.choices), h.digest('hex'));
  assert.match(sb.tracker(b.choices), HEX);
});

for (const shape of SHAPES) {
  const name = `${shape.choices} choices, ${shape.seats} seat(s), blank`;
  test(`every allowed ballot verifies and decrypts to its marks (${name})`, () => {
    let n = 0;
    for (const marks of vectors(shape.choices).filter((m) => allowed(shape, m))) {
      const json = sb.seal(pkHex, contextText, shape, marks);
      const b = parse(json);
      assert.equal(b.proofs.length, shape.choices);
      assert.ok(b.proofs.every((p) => p.length === 2));
      assert.equal(b.overall.length, shape.seats);
      assert.ok(verifyBallot(context, pk, shape, b), `verifies: ${marks}`);
      const decrypted = b.choices.map((c) => c.beta.subtract(mul(c.alpha, x)));
      assert.ok(decrypted.every((m, i) => m.equals(mul(G, marks[i]))), `decrypts: ${marks}`);
      n += 1;
    }
    assert.equal(n, shape.seats === 1 ? 3 : 1 + 3 + 3 + 1);
  });

  test(`forbidden ballots are refused (${name})`, () => {
    const forbidden = vectors(shape.choices).filter((m) => !allowed(shape, m));
    assert.ok(forbidden.some((m) => m.every((v) => v === 0)), 'none marked is among them');
    for (const marks of forbidden) {
      assert.equal(sb.encryptBallot(context, pk, shape, marks), null, `refused: ${marks}`);
      assert.equal(sb.seal(pkHex, contextText, shape, marks), null);
    }
    assert.equal(sb.encryptBallot(context, pk, shape, [1]), null, 'too few marks');
    assert.throws(() => sb.encryptBallot(context, pk, shape, [2, 0, 0, 0].slice(0, shape.choices)));
  });
}

test('a tampered ballot, a tampered proof or another context does not verify', () => {
  const shape = SHAPES[1];
  const json = sb.seal(pkHex, contextText, shape, [1, 0, 1, 0]);
  const fresh = () => parse(json);
  assert.ok(verifyBallot(context, pk, shape, fresh()));
  const twice = fresh();
  twice.choices[0].beta = twice.choices[0].beta.add(G);
  assert.ok(!verifyBallot(context, pk, shape, twice), 'a ciphertext counting twice');
  const swapped = fresh();
  swapped.choices.reverse();
  assert.ok(!verifyBallot(context, pk, shape, swapped), 'ciphertexts swapped without their proofs');
  // A ciphertext moved to another choice with its proof (the two candidates of equal
  // weight): what would let a daemon turn votes for one candidate into votes for another.
  const moved = fresh();
  [moved.choices[0], moved.choices[1]] = [moved.choices[1], moved.choices[0]];
  [moved.proofs[0], moved.proofs[1]] = [moved.proofs[1], moved.proofs[0]];
  assert.ok(!verifyBallot(context, pk, shape, moved), 'a choice moved with its proof');
  const response = fresh();
  response.proofs[0][1].response = (response.proofs[0][1].response + 1n) % L;
  assert.ok(!verifyBallot(context, pk, shape, response), 'a response changed');
  const overall = fresh();
  overall.overall[0].challenge = (overall.overall[0].challenge + 1n) % L;
  assert.ok(!verifyBallot(context, pk, shape, overall), 'an overall challenge changed');
  const elsewhere = new TextEncoder().encode('item-7/0/BBB');
  assert.ok(!verifyBallot(elsewhere, pk, shape, fresh()), 'bound to its member');
  assert.ok(!verifyBallot(context, mul(G, 2), shape, fresh()), 'bound to its key');
});

test('the identity is refused as a key, and garbage too', () => {
  assert.throws(() => sb.seal(sb.pointHex(Point.ZERO), contextText, SHAPES[0], [1, 0, 0]));
  assert.throws(() => sb.seal('ff'.repeat(32), contextText, SHAPES[0], [1, 0, 0]));
  assert.throws(() => sb.seal('zz', contextText, SHAPES[0], [1, 0, 0]));
});

// --- The form, with a stand-in for the DOM ---------------------------------------------

function element(props = {}) {
  const listeners = {};
  return {
    ...props,
    addEventListener: (type, f) => (listeners[type] ||= []).push(f),
    fire(type) {
      let prevented = false;
      for (const f of listeners[type] || []) f({ preventDefault: () => (prevented = true) });
      return prevented;
    },
  };
}

/** The form ballot.rs renders: `choices` names, blank last when offered. */
function form(choices, seats, blank) {
  const type = seats > 1 ? 'checkbox' : 'radio';
  const inputs = choices.map((c) => element({ type, checked: false, dataset: { choice: c } }));
  const parts = {
    'input[name="sealed"]': element({ type: 'hidden', value: '' }),
    '#secret-error': element({ hidden: true, textContent: '' }),
    'button[type="submit"]': element({ disabled: true }),
  };
  const f = element({
    dataset: { key: pkHex, context: contextText, seats: String(seats), blank: String(blank), chooseOne: 'Choose one.', markUpTo: `Up to ${seats}.` },
    querySelectorAll: (s) => (s === 'input[data-choice]' ? inputs : []),
    querySelector: (s) => parts[s] ?? null,
    posted: 0,
    submit() {
      this.posted += 1;
    },
  });
  return { f, inputs, sealed: parts['input[name="sealed"]'], error: parts['#secret-error'], button: parts['button[type="submit"]'] };
}

function exerciseForm(attach, label) {
  test(`the form posts a ballot that verifies, and refuses what is not allowed (${label})`, () => {
    // One seat: radios that exclude each other.
    const one = form(['a', 'b', 'blank'], 1, true);
    attach(one.f);
    assert.equal(one.button.disabled, false, 'the button is enabled');
    assert.ok(one.f.fire('submit'), 'the plain post is prevented');
    assert.equal(one.error.hidden, false);
    assert.equal(one.error.textContent, 'Choose one.');
    assert.equal(one.f.posted, 0);
    one.inputs[0].checked = true;
    one.inputs[0].fire('change');
    one.inputs[2].checked = true;
    one.inputs[2].fire('change');
    assert.deepEqual(one.inputs.map((i) => i.checked), [false, false, true], 'one radio at a time');
    one.f.fire('submit');
    assert.equal(one.f.posted, 1);
    assert.equal(one.error.hidden, true);
    assert.equal(one.button.disabled, true);
    const b = parse(one.sealed.value);
    assert.ok(verifyBallot(context, pk, { choices: 3, seats: 1, blank: true }, b));
    assert.ok(b.choices[2].beta.subtract(mul(b.choices[2].alpha, x)).equals(G), 'blank marked');

    // Three seats: checkboxes; too many, or blank with a candidate, are refused.
    const three = form(['a', 'b', 'c', 'd', 'blank'], 3, true);
    attach(three.f);
    for (const marks of [[1, 1, 1, 1, 0], [1, 0, 0, 0, 1]]) {
      marks.forEach((m, i) => (three.inputs[i].checked = m === 1));
      three.f.fire('submit');
      assert.equal(three.error.textContent, 'Up to 3.');
      assert.equal(three.error.hidden, false);
      assert.equal(three.f.posted, 0);
    }
    [0, 1, 1, 0, 0].forEach((m, i) => (three.inputs[i].checked = m === 1));
    three.f.fire('submit');
    assert.equal(three.f.posted, 1);
    assert.ok(verifyBallot(context, pk, { choices: 5, seats: 3, blank: true }, parse(three.sealed.value)));

    // A broken key: a plain message, nothing posted.
    const broken = form(['a', 'b'], 1, false);
    broken.f.dataset.key = 'ff'.repeat(32);
    attach(broken.f);
    broken.inputs[1].checked = true;
    broken.f.fire('submit');
    assert.match(broken.error.textContent, /^Your vote could not be encrypted: /);
    assert.equal(broken.f.posted, 0);
    assert.equal(broken.sealed.value, '');
  });
}

exerciseForm(sb.attach, 'src/ballot.js');

// The bundle itself, when built: it attaches to the page's form on its own.
const bundle = existsSync(BUNDLE) ? readFileSync(BUNDLE, 'utf8') : '';
if (bundle.includes('GENERATED by assets/secret-ballot/build.sh')) {
  exerciseForm((f) => {
    let ready;
    const document = {
      readyState: 'loading',
      getElementById: (id) => (id === 'secret-ballot' ? f : null),
      addEventListener: (type, g) => type === 'DOMContentLoaded' && (ready = g),
    };
    vm.runInNewContext(bundle, { document, crypto: webcrypto, TextEncoder });
    ready();
  }, 'the bundle');
} else {
  test('the bundle', { skip: 'not built yet: run build.sh' }, () => {});
}

test('the answer page says whether the tracker is the one this browser computed', () => {
  const page = (shown) => {
    const code = { dataset: { check: '/ballot/T' }, textContent: ` ${shown} ` };
    const out = { dataset: { same: 'Same.', other: 'Other: {tracker}.' }, hidden: true, textContent: '', className: '' };
    const doc = { getElementById: (id) => ({ tracker: code, 'tracker-check': out })[id] ?? null };
    return { doc, out };
  };
  const storage = { getItem: (k) => (k === 'councild-tracker:/ballot/T' ? 'abc' : null) };
  const same = page('abc');
  sb.checkTracker(same.doc, storage);
  assert.equal(same.out.hidden, false);
  assert.equal(same.out.textContent, 'Same.');
  const other = page('def');
  sb.checkTracker(other.doc, storage);
  assert.equal(other.out.textContent, 'Other: abc.');
  assert.equal(other.out.className, 'error');
  const none = page('abc');
  sb.checkTracker(none.doc, { getItem: () => null });
  assert.equal(none.out.hidden, true, 'nothing kept: nothing said');
});
