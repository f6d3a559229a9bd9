// npx tsx src/app/bench/runCtr.ts --model sim [...]: `collectivekv bench ctr` without the CLI wiring.
import { runBenchCtrCommand } from './ctr';

runBenchCtrCommand(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => {
  console.error(e);
  process.exitCode = 1;
});
