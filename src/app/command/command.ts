// The shape of one `collectivekv` command, shared by the commands in src/app/cli, src/app/bench and
// src/app/serve: the words that select it, and what runs it on the rest of the command line.
// Exit codes: 0 done, 1 failed, 2 a bad command line (a UsageError, src/app/command/flags.ts).

export interface Command {
  /** e.g. ['bench', 'ctr']. */
  readonly words: readonly string[];
  /** Runs on argv after the command words (unparsed); resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

/** The first command whose words start `argv`, or undefined. */
export function findCommand(commands: readonly Command[], argv: readonly string[]): Command | undefined {
  return commands.find((c) => c.words.every((w, i) => argv[i] === w));
}
