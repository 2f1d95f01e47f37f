// councild's secret ballot, the browser side: encrypts a delegate's marks with exponential
// ElGamal on Ristretto255 and proves them well formed, exactly as src/core/secret.rs
// verifies (`challenge`, `OneOf::prove`, `Shape`, `Ballot::encrypt`). The group is
// @noble/curves' ristretto255, the hashes @noble/hashes'; only scalars modulo the group's
// order are computed here, with BigInt.

import { ristretto255 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, utf8ToBytes } from '@noble/hashes/utils.js';

export const Point = ristretto255.Point;
/** The base point `G`. */
export const G = Point.BASE;
/** The group's order ℓ. */
export const L = 2n ** 252n + 27742317777372353535851937790883648493n;
if (Point.Fn.ORDER !== L) throw new Error('ristretto255: unexpected group order');

const DOMAIN = utf8ToBytes('councild secret ballot v1');

/** `k` reduced modulo ℓ, in 0..ℓ. */
export const mod = (k) => ((k % L) + L) % L;

/** `k·P` for any integer `k` (0 gives the identity), constant time in `k`. */
export function mul(P, k) {
  const s = mod(BigInt(k));
  return s === 0n ? Point.ZERO : P.multiply(s);
}

/** A uniformly random scalar: 64 random bytes, little-endian, modulo ℓ. */
export function randomScalar() {
  const wide = new Uint8Array(64);
  globalThis.crypto.getRandomValues(wide);
  return mod(bytesToNumberLE(wide));
}

/** A point as 64 lowercase hex digits (its Ristretto encoding). */
export const pointHex = (P) => bytesToHex(P.toBytes());
/** A point from 64 hex digits; throws when they are not one. */
export const pointFromHex = (hex) => Point.fromHex(hex);
/** A scalar as 64 lowercase hex digits (32 bytes, little-endian, reduced). */
export const scalarHex = (s) => bytesToHex(numberToBytesLE(mod(s), 32));

/**
 * The Fiat–Shamir challenge binding a proof to its context and points: SHA-512 of the
 * domain, the context's length (u64 little-endian), the context, then each point's
 * encoding; the digest read little-endian modulo ℓ.
 */
export function challenge(context, points) {
  const h = sha512.create();
  h.update(DOMAIN);
  h.update(numberToBytesLE(BigInt(context.length), 8));
  h.update(context);
  for (const P of points) h.update(P.toBytes());
  return mod(bytesToNumberLE(h.digest()));
}

/** The exponential ElGamal ciphertext of `m` under `pk` with randomness `r`: (r·G, m·G + r·pk). */
export function encrypt(pk, m, r) {
  return { alpha: mul(G, r), beta: mul(G, m).add(mul(pk, r)) };
}

/** The challenge of a OneOf proof: over pk, the ciphertext, then each branch's a and b. */
export function oneOfHash(context, pk, c, branches) {
  return challenge(context, [pk, c.alpha, c.beta, ...branches.flatMap((b) => [b.a, b.b])]);
}

/**
 * Proves that `c = encrypt(pk, values[real], r)` without saying which value: one
 * Chaum–Pedersen proof per value (that log_G(alpha) = log_pk(beta − value·G)), all but the
 * real one simulated, their challenges adding up to the hash of everything
 * (Cramer–Damgård–Schoenmakers). Mirrors `OneOf::prove`.
 */
export function proveOneOf(context, pk, c, values, real, r) {
  const w = randomScalar();
  const branches = values.map((m, k) => {
    if (k === real) return { a: mul(G, w), b: mul(pk, w), challenge: 0n, response: 0n };
    const challenge = randomScalar();
    const response = randomScalar();
    return {
      a: mul(G, response).subtract(mul(c.alpha, challenge)),
      b: mul(pk, response).subtract(mul(c.beta.subtract(mul(G, m)), challenge)),
      challenge,
      response,
    };
  });
  const e = oneOfHash(context, pk, c, branches);
  const others = branches.reduce((sum, b) => sum + b.challenge, 0n);
  branches[real].challenge = mod(e - others);
  branches[real].response = mod(w + branches[real].challenge * r);
  return branches;
}

/** Each choice's weight in the overall sum: 1 per candidate, the seats for `blank` (last). */
export function weights(shape) {
  return Array.from({ length: shape.choices }, (_, i) =>
    shape.blank && i + 1 === shape.choices ? shape.seats : 1,
  );
}

/** The sums the overall proof allows: 1 to the seats. */
export function sums(shape) {
  return Array.from({ length: shape.seats }, (_, i) => i + 1);
}

/** The ciphertext of the weighted sum of the marks: Σ weight_i · c_i. */
export function overallCiphertext(shape, choices) {
  const ws = weights(shape);
  return choices.reduce(
    (sum, c, i) => ({ alpha: sum.alpha.add(mul(c.alpha, ws[i])), beta: sum.beta.add(mul(c.beta, ws[i])) }),
    { alpha: Point.ZERO, beta: Point.ZERO },
  );
}

/** The weighted sum of the marks, which the overall proof proves is 1 to the seats. */
export function markSum(shape, marks) {
  const ws = weights(shape);
  return marks.reduce((sum, m, i) => sum + m * ws[i], 0);
}

function checkShape(shape) {
  const ok = (n, least) => Number.isSafeInteger(n) && n >= least;
  if (!ok(shape.choices, 1) || !ok(shape.seats, 1) || typeof shape.blank !== 'boolean')
    throw new Error('the round is not described correctly');
}

/** What the proof about choice `i` of `n` is bound to: the context, then the choice's place. */
export function choiceContext(context, i, n) {
  return concatBytes(context, utf8ToBytes(`/choice/${i}/${n}`));
}

/** What the proof about the sum of the `n` marks is bound to. */
export function overallContext(context, n) {
  return concatBytes(context, utf8ToBytes(`/overall/${n}`));
}

/**
 * Encrypts the marks (one per choice, 0 or 1, or booleans) with a proof per choice that it
 * is 0 or 1, and a proof that the weighted sum is 1 to the seats. `null` when the marks do
 * not fit the shape (none, blank with a candidate, more than the seats). Mirrors
 * `Ballot::encrypt`; the points and scalars are kept as objects (see `ballotJson`).
 */
export function encryptBallot(context, pk, shape, marks) {
  checkShape(shape);
  const ms = marks.map(Number);
  if (ms.some((m) => m !== 0 && m !== 1)) throw new Error('a mark is neither 0 nor 1');
  if (ms.length !== shape.choices) return null;
  const sum = markSum(shape, ms);
  if (sum < 1 || sum > shape.seats) return null;
  const rs = ms.map(() => randomScalar());
  const choices = ms.map((m, i) => encrypt(pk, m, rs[i]));
  const n = choices.length;
  const proofs = choices.map((c, i) => proveOneOf(choiceContext(context, i, n), pk, c, [0, 1], ms[i], rs[i]));
  const ws = weights(shape);
  const rSum = mod(rs.reduce((s, r, i) => s + r * BigInt(ws[i]), 0n));
  const total = overallCiphertext(shape, choices);
  const overall = proveOneOf(overallContext(context, n), pk, total, sums(shape), sum - 1, rSum);
  return { choices, proofs, overall };
}

/** A ballot as the JSON `secret::Ballot` reads: points and scalars in hex. */
export function ballotJson(ballot) {
  const branch = (b) => ({
    a: pointHex(b.a),
    b: pointHex(b.b),
    challenge: scalarHex(b.challenge),
    response: scalarHex(b.response),
  });
  return JSON.stringify({
    choices: ballot.choices.map((c) => ({ alpha: pointHex(c.alpha), beta: pointHex(c.beta) })),
    proofs: ballot.proofs.map((p) => p.map(branch)),
    overall: ballot.overall.map(branch),
  });
}

/** The election key from its hex; refuses the identity, under which nothing is secret. */
export function electionKey(hex) {
  const pk = pointFromHex(hex);
  if (pk.is0()) throw new Error('the election key is not valid');
  return pk;
}

/** The sealed vote: the ballot JSON for `marks` under the key in hex, bound to the context string. `null` when the marks do not fit. */
export function seal(keyHex, contextText, shape, marks) {
  const ballot = encryptBallot(utf8ToBytes(contextText), electionKey(keyHex), shape, marks);
  return ballot && ballotJson(ballot);
}

/** The ballot's tracker: SHA-256 of each choice's alpha then beta encoding, lowercase hex. */
export function tracker(choices) {
  const h = sha256.create();
  for (const c of choices) {
    h.update(c.alpha.toBytes());
    h.update(c.beta.toBytes());
  }
  return bytesToHex(h.digest());
}

// The page: the form `secret-ballot` that src/shell/http/ballot.rs renders. Its choice
// inputs have no name, so only the hidden `sealed` field (the encrypted ballot) is posted.

/** Wires the form: radios as one group, the marks checked, the vote encrypted on submit. */
export function attach(form) {
  const inputs = Array.from(form.querySelectorAll('input[data-choice]'));
  const sealed = form.querySelector('input[name="sealed"]');
  const error = form.querySelector('#secret-error');
  const button = form.querySelector('button[type="submit"]');
  const show = (message) => {
    error.textContent = message;
    error.hidden = false;
  };
  // Radios without a name do not exclude each other: checking one unchecks the others.
  for (const input of inputs) {
    if (input.type !== 'radio') continue;
    input.addEventListener('change', () => {
      if (input.checked) for (const other of inputs) if (other !== input && other.type === 'radio') other.checked = false;
    });
  }
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    error.hidden = true;
    error.textContent = '';
    try {
      const marks = inputs.map((input) => (input.checked ? 1 : 0));
      const shape = { choices: inputs.length, seats: Number(form.dataset.seats), blank: form.dataset.blank === 'true' };
      checkShape(shape);
      if (!marks.includes(1)) return show(form.dataset.chooseOne);
      if (markSum(shape, marks) > shape.seats) return show(form.dataset.markUpTo);
      const ballot = encryptBallot(utf8ToBytes(form.dataset.context), electionKey(form.dataset.key), shape, marks);
      if (ballot === null) return show(form.dataset.markUpTo);
      sealed.value = ballotJson(ballot);
      // The tracker as this browser computes it, for the answer page to compare with the
      // one the daemon gives (`checkTracker`).
      try {
        globalThis.sessionStorage?.setItem(TRACKER_KEY + form.getAttribute('action'), tracker(ballot.choices));
      } catch {
        // No storage (a private window, say): the answer page then says nothing.
      }
      button.disabled = true;
      form.submit();
    } catch (e) {
      show('Your vote could not be encrypted: ' + (e && e.message ? e.message : String(e)));
    }
  });
  button.disabled = false;
}

const TRACKER_KEY = 'councild-tracker:';

/**
 * On the page that answers a vote: compares the tracker the daemon gives (`#tracker`, whose
 * `data-check` is the ballot's form action) with the one this browser computed from the
 * ballot it encrypted, and says which in `#tracker-check` (its `data-same`, or its
 * `data-other` with `{tracker}` replaced). Says nothing when the browser kept none.
 */
export function checkTracker(doc, storage) {
  const code = doc.getElementById('tracker');
  const out = doc.getElementById('tracker-check');
  if (!code || !out || !code.dataset.check || !storage) return;
  const mine = storage.getItem(TRACKER_KEY + code.dataset.check);
  if (!mine) return;
  const same = mine === code.textContent.trim();
  out.textContent = same ? out.dataset.same : out.dataset.other.replace('{tracker}', mine);
  out.className = same ? 'tracker-same' : 'error';
  out.hidden = false;
}

if (typeof document !== 'undefined') {
  const start = () => {
    const form = document.getElementById('secret-ballot');
    if (form) attach(form);
    let storage = null;
    try {
      storage = globalThis.sessionStorage;
    } catch {
      // No storage: nothing to compare.
    }
    checkTracker(document, storage);
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
}
