// A group of command-line flags declared once: each flag's option name and value check. Commands
// take the flags of a group they accept (all or some), give parseArgs the group's options and read
// the checked values back under the option names (absent flags are left out).

/** One flag: the option it sets and the check of its value (a UsageError naming the flag, or undefined when absent). */
export interface FlagSpec<V> {
  key: keyof V & string;
  parse: (flag: string, value: string | undefined) => unknown;
}

export class FlagGroup<F extends string, V extends object> {
  /** Every flag of the group (without the leading --), in declaration order. */
  readonly flags: readonly F[];

  constructor(private readonly specs: Record<F, FlagSpec<V>>) {
    this.flags = Object.keys(specs) as F[];
  }

  /** node:util parseArgs options for `flags` (all take a value). */
  options(flags: readonly F[] = this.flags): Record<string, { type: 'string' }> {
    return Object.fromEntries(flags.map((f) => [f, { type: 'string' as const }]));
  }

  /** The values of `flags` in parseArgs's `values`, checked, under their option names. */
  parse(values: Record<string, unknown>, flags: readonly F[] = this.flags): V {
    const out: Record<string, unknown> = {};
    for (const flag of flags) {
      const raw = values[flag];
      const spec = this.specs[flag];
      const parsed = spec.parse(`--${flag}`, typeof raw === 'string' ? raw : undefined);
      if (parsed !== undefined) out[spec.key] = parsed;
    }
    return out as V;
  }
}
