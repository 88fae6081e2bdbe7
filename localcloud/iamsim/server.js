// The local cloud's IAM evaluator: @cloud-copilot/iam-simulate behind JSON lines.
// One request per line on stdin: {"id": ..., "simulation": <Simulation>}; one reply per line on
// stdout: {"id": ..., "result": "Allowed"|"ExplicitlyDenied"|"ImplicitlyDenied"} or
// {"id": ..., "error": "<validation errors>"}. Requests are answered in order.
'use strict';
const readline = require('node:readline');
const { runSimulation } = require('@cloud-copilot/iam-simulate');

const lines = readline.createInterface({ input: process.stdin, terminal: false });
let queue = Promise.resolve();

async function answer(line) {
  let id = null;
  try {
    const message = JSON.parse(line);
    id = message.id;
    const response = await runSimulation(message.simulation, { simulationMode: 'Strict' });
    if (response.resultType === 'error') {
      return { id, error: JSON.stringify(response.errors) };
    }
    return { id, result: response.overallResult };
  } catch (exc) {
    return { id, error: String((exc && exc.stack) || exc) };
  }
}

lines.on('line', (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    process.stdout.write(JSON.stringify(await answer(line)) + '\n');
  });
});
lines.on('close', () => {
  queue.then(() => process.exit(0));
});
