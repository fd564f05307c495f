import type { Admission, HedgeOffer, Ticket } from "../admission/admission.js";
import type { ForwardOutcome } from "../proxy/forward.js";
import type { Worker } from "../registry/worker.js";
import type { AnswerSink } from "./answer-sink.js";
import type { PlannedContext } from "./context.js";
import { Race } from "./hedge-race.js";

/** One attempt's outcome and the worker whose answer it is (the copy's, when the copy won). */
export interface Attempt {
  readonly outcome: ForwardOutcome;
  readonly worker: Worker;
}

/**
 * One exchange of a request on a worker into `sink`; its worker is released
 * as cut (nothing learned; see Admission.cut) when `lost()` says so at its end.
 */
export type LaneExchange = (ctx: PlannedContext, sink: AnswerSink, ticket: Ticket, worker: Worker, mayRetry: boolean, lost: () => boolean) => Promise<ForwardOutcome>;

/**
 * An attempt that admission may hedge: the original runs into the race's
 * original lane and is offered for a copy (admission/hedge.ts decides when
 * and where). Without a copy it is the plain exchange. With one, the first
 * answer head claims the client's sink (hedge-race.ts) and the other copy
 * is cut; an original that failed before answering leaves the answer to
 * the copy still running.
 */
export async function hedgedAttempt(admission: Admission, ctx: PlannedContext, worker: Worker, mayRetry: boolean, exchange: LaneExchange): Promise<Attempt> {
  const race = new Race(ctx.sink);
  // Assigned in startCopy: typed wide, so the checks below are not narrowed away.
  let copy = null as Promise<Attempt> | null;
  const offer: HedgeOffer = {
    ticket: ctx.ticket,
    worker,
    weightVersion: worker.weightVersion,
    startCopy(copyWorker, copyTicket) {
      ctx.notes.hedge = { worker: copyWorker.url, winner: "none" };
      // A copy's 5xx is held back (it is never the client's answer).
      copy = exchange(ctx, race.copy, copyTicket, copyWorker, true, () => race.copy.cutOff).then((outcome) => {
        const won = race.winner === race.copy;
        admission.copyEnded(offer, won ? "won" : race.copy.cutOff || outcome.kind === "client_aborted" ? "cut" : "failed");
        return { outcome, worker: copyWorker };
      });
    },
    cancelCopy: () => race.copy.cut(),
  };
  const withdraw = admission.offerCopy(offer);
  race.onClaim = (lane) => {
    // Once an answer began, a copy could only be cut: none starts after it.
    withdraw();
    const note = ctx.notes.hedge;
    if (note === undefined) return;
    // Noted before the head goes out: the access log reads the notes when the answer ends, before this attempt returns.
    note.winner = lane === race.copy ? "copy" : "original";
    if (lane === race.copy) ctx.notes.workerUrl = note.worker;
  };
  const first = await exchange(ctx, race.original, ctx.ticket, worker, mayRetry, () => race.original.cutOff);
  withdraw();
  if (copy === null) return { outcome: first, worker };
  // The original's answer went out (whole, or cut mid-answer): the copy was cut at its claim.
  if (race.winner === race.original) {
    await copy;
    return { outcome: first, worker };
  }
  // The copy claimed the sink (the original was cut), or the original failed before answering and the copy still runs.
  const second: Attempt = await copy;
  return race.winner === race.copy ? second : { outcome: first, worker };
}
