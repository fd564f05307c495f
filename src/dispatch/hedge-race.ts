import type { AnswerHeaders } from "../proxy/h1-connection.js";
import type { AnswerSink } from "./answer-sink.js";

/** Thrown into a copy's exchange whose answer may not become the client's: nothing of it reached the sink. */
export class LostRace extends Error {
  constructor(why: string) {
    super(why);
  }
}

/**
 * The two copies of a hedged request racing for one answer sink: the
 * original's exchange writes into {@link original}, the copy's into
 * {@link copy}. The first answer head to reach its lane claims the sink (a
 * worker sends its head when the output is done); from then on only that
 * lane writes, and the other is cut: its close listeners fire, which aborts
 * its upstream request. Headers and body so always come from one copy.
 *
 * The original claims with any head its exchange lets through (a held-back
 * 5xx never reaches the sink), as it would without a copy; the copy only
 * with a 2xx: a copy's error is never the client's answer.
 */
export class Race {
  readonly original: Lane;
  readonly copy: Lane;
  winner: Lane | null = null;
  /** Runs once, when a lane claims the sink (before its head is written: the receiver's notes are current when it sees the answer). */
  onClaim: ((lane: Lane) => void) | null = null;

  constructor(readonly sink: AnswerSink) {
    this.original = new Lane(this, false);
    this.copy = new Lane(this, true);
  }

  /** Called by a lane's head: whether `lane` may write the sink. */
  claim(lane: Lane, status: number): void {
    if (this.winner === lane) return;
    if (this.winner !== null || lane.cutOff) throw new LostRace("the other copy's answer was first");
    if (lane.isCopy && status >= 300) throw new LostRace(`the copy answered ${status}`);
    this.winner = lane;
    (lane.isCopy ? this.original : this.copy).cut();
    this.onClaim?.(lane);
  }
}

/** One copy's view of the race's sink (see {@link Race}). */
export class Lane implements AnswerSink {
  /** Cut by the race (the other copy claimed) or by a hold. */
  cutOff = false;
  #listeners: (() => void)[] = [];

  constructor(
    private readonly race: Race,
    readonly isCopy: boolean,
  ) {}

  get headSent(): boolean {
    return this.race.winner === this && this.race.sink.headSent;
  }

  get closed(): boolean {
    return this.cutOff || this.race.sink.closed;
  }

  /** Ends this lane's exchange: its close listeners run (the exchange aborts its upstream request). */
  cut(): void {
    if (this.cutOff || this.race.winner === this) return;
    this.cutOff = true;
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const l of listeners) {
      this.race.sink.offClose(l);
      l();
    }
  }

  head(status: number, headers: AnswerHeaders): void {
    this.race.claim(this, status);
    this.race.sink.head(status, headers);
  }

  chunk(data: Buffer): boolean {
    return this.race.sink.chunk(data);
  }

  end(last: Buffer | null): void {
    this.race.sink.end(last);
  }

  abort(error: Error): void {
    // Only the lane that claimed the sink has anything of its own there to cut.
    if (this.race.winner === this) this.race.sink.abort(error);
  }

  holdsBytes(): boolean {
    return this.race.winner === this && this.race.sink.holdsBytes();
  }

  onClose(listener: () => void): void {
    this.#listeners.push(listener);
    this.race.sink.onClose(listener);
  }

  offClose(listener: () => void): void {
    const i = this.#listeners.indexOf(listener);
    if (i >= 0) this.#listeners.splice(i, 1);
    this.race.sink.offClose(listener);
  }

  onceDrain(listener: () => void): void {
    this.race.sink.onceDrain(listener);
  }
}
