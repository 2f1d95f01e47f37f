// Prints one ballot as the page would post it, for src/core/secret.rs to verify in a test:
//   node vector.mjs PK_HEX CONTEXT SEATS BLANK MARKS
// e.g. node vector.mjs e2f2…76 item-7/0/AFG 1 true 1,0,0
// BLANK is "true" or "false"; MARKS one 0 or 1 per choice, blank last when offered.
import { seal } from './src/ballot.js';

const [key, context, seats, blank, marks] = process.argv.slice(2);
if (marks === undefined || !/^[0-9]+$/.test(seats) || !['true', 'false'].includes(blank) || !/^[01](,[01])*$/.test(marks)) {
  console.error('usage: node vector.mjs PK_HEX CONTEXT SEATS BLANK(true|false) MARKS(like 1,0,0)');
  process.exit(2);
}
const m = marks.split(',').map(Number);
const json = seal(key, context, { choices: m.length, seats: Number(seats), blank: blank === 'true' }, m);
if (json === null) {
  console.error('these marks are not allowed in this round');
  process.exit(1);
}
console.log(json);
