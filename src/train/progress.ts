// Training progress: a bar redrawn in place on a TTY (items/s, loss, ETA), plain lines every few
// seconds elsewhere (logs, CI), and one summary line per epoch in both cases.

/** One epoch of a training run, as trainLoop reports it. */
export interface EpochRecord {
  /** 1-based. */
  epoch: number;
  /** Mean step loss of the epoch. */
  loss: number;
  /** Means of the steps' extras. */
  extras: Record<string, number>;
  /** Validation metrics, or null when this epoch was not validated. */
  validation: Record<string, number> | null;
  /** True when this epoch's validation was the best so far (its weights are the snapshot). */
  best: boolean;
  /** With a second phase (trainLoop's secondPhase): 1 before the switch, 2 after. */
  phase?: number;
  /** Seconds since training started, at the end of this epoch. */
  seconds: number;
  steps: number;
  items: number;
  /** True when the time or step bound cut this epoch short. */
  partial: boolean;
}

/** Where progress text goes: process.stderr, or anything with write (tests). */
export interface ProgressSink {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none';

export interface ProgressOptions {
  mode: ProgressMode;
  output?: ProgressSink;
  label?: string;
  logEverySeconds: number;
  now: () => number;
}

/** What an epoch line shows: the loop's own record, less its counters. */
type EpochSummary = Pick<EpochRecord, 'epoch' | 'loss' | 'extras' | 'validation' | 'best' | 'seconds' | 'partial'>;

function defaultSink(): ProgressSink | undefined {
  const p = (globalThis as { process?: { stderr?: ProgressSink } }).process;
  return p?.stderr;
}

export class ProgressReporter {
  private readonly sink?: ProgressSink;
  private readonly bar: boolean;
  private epoch = 0;
  private maxEpochs = 0;
  private total?: number;
  private epochStartMs = 0;
  private lastLineMs = 0;
  private drawn = false;

  constructor(private readonly o: ProgressOptions) {
    this.sink = o.mode === 'none' ? undefined : (o.output ?? defaultSink());
    this.bar = o.mode === 'bar' || (o.mode === 'auto' && this.sink?.isTTY === true);
  }

  epochStart(epoch: number, maxEpochs: number, total?: number): void {
    this.epoch = epoch;
    this.maxEpochs = maxEpochs;
    this.total = total;
    this.epochStartMs = this.o.now();
    this.lastLineMs = this.epochStartMs;
  }

  step(steps: number, items: number, meanLoss: number): void {
    if (this.sink == null) return;
    const now = this.o.now();
    const seconds = (now - this.epochStartMs) / 1000;
    const rate = seconds > 0 ? items / seconds : 0;
    const eta = this.total != null && steps > 0 ? formatDuration((seconds / steps) * Math.max(0, this.total - steps)) : '?';
    const counter = this.total != null ? `${steps}/${this.total}` : `${steps}`;
    const stats = `${rate.toFixed(0)} items/s, loss ${meanLoss.toFixed(4)}, ETA ${eta}`;
    if (this.bar) {
      const width = 24;
      const done = this.total ? Math.min(width, Math.round((width * steps) / this.total)) : 0;
      const line = `${this.prefix()}epoch ${this.epoch}/${this.maxEpochs} [${'#'.repeat(done)}${'.'.repeat(width - done)}] ${counter} ${stats}`;
      this.sink.write(`\r${line.slice(0, Math.max(20, (this.sink.columns ?? 120) - 1))}\x1b[K`);
      this.drawn = true;
    } else if (now - this.lastLineMs >= this.o.logEverySeconds * 1000) {
      this.lastLineMs = now;
      this.sink.write(`${this.prefix()}epoch ${this.epoch}/${this.maxEpochs} step ${counter}: ${stats}\n`);
    }
  }

  epochDone(r: EpochSummary, metric: string): void {
    if (this.sink == null) return;
    this.clearBar();
    const extras = Object.entries(r.extras).map(([k, v]) => `, ${k} ${v.toFixed(4)}`).join('');
    const valid = r.validation == null ? '' : `, valid ${Object.entries(r.validation).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(' ')}${r.best ? ' *' : ''}`;
    this.sink.write(`${this.prefix()}epoch ${r.epoch}${r.partial ? ' (cut short by the time or step bound)' : ''}: loss ${r.loss.toFixed(4)}${extras}${valid}, ` +
      `${r.seconds.toFixed(0)} s${r.validation != null && !(metric in r.validation) ? ` (no ${metric})` : ''}\n`);
  }

  close(): void {
    this.clearBar();
  }

  private clearBar(): void {
    if (this.drawn && this.sink != null) this.sink.write('\r\x1b[K');
    this.drawn = false;
  }

  private prefix(): string {
    return this.o.label ? `[${this.o.label}] ` : '';
  }
}

export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}
