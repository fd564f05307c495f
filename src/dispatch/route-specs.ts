import type { Admission } from "../admission/admission.js";
import { imageIdsIn, videoIdIn, videoJobEnd, type AffinityMap } from "../admission/affinity.js";
import type { AnswerHook } from "../proxy/forward.js";
import type { RouteSpec } from "./context.js";

/**
 * Bytes of an images answer searched for content ids. A `url` answer is one
 * small item (`{"id","created","data":[{"b64_json":null,"url":...}]}`), so
 * its url is in the first hundreds of bytes; a `b64_json` answer has none.
 */
const imageCaptureBytes = 8 * 1024;
/** A video-create answer is one small job object. */
const videoCaptureBytes = 256 * 1024;
/** A poll or delete of a job on its owner: one job object. */
const jobCaptureBytes = 64 * 1024;

/** The routes the dispatch core serves, each built once; the hot path only reads them. */
export interface RouteSpecs {
  /** Images generations and edits: remembers which worker holds each `url` image. */
  readonly image: RouteSpec;
  /** `/rollout/generate`, `/v1/diffusion/generate`: the whole request to one worker. */
  readonly generation: RouteSpec;
  /** `POST /v1/videos`: created at most once; remembers the job's worker. */
  readonly videoCreate: RouteSpec;
  /** `POST /v1/meshes`: created at most once, on an I2M worker; remembers the job's worker. */
  readonly meshCreate: RouteSpec;
  /** Any other path: forwarded to a worker unchanged, never retried. */
  readonly passthrough: RouteSpec;
  /** A request to the worker that owns an id, whose answer teaches nothing. */
  readonly toOwner: RouteSpec;
  /** A poll of a video job on its owner: an ended job is no work of its worker any more. */
  readonly videoPoll: RouteSpec;
  /** A delete of a video job on its owner. */
  readonly videoDelete: RouteSpec;
  /** A delete of a mesh job on its owner. */
  readonly meshDelete: RouteSpec;
  /** The generation routes a rollout item may take, by path. */
  readonly byPath: ReadonlyMap<string, RouteSpec>;
}

/** The route specs over the router's id-affinity maps and admission (which learns when video jobs end). */
export function createRouteSpecs(admission: Admission, images: AffinityMap, videos: AffinityMap, meshes: AffinityMap): RouteSpecs {
  const rememberImages: AnswerHook = (workerUrl, status, captured) => {
    if (status !== 200) return;
    for (const id of imageIdsIn(captured)) images.remember(id, workerUrl);
  };
  /** A job create's answer names the job: its worker is remembered (and, for videos, the job is counted as its work). */
  const rememberJob =
    (jobs: AffinityMap): AnswerHook =>
    (workerUrl, status, captured) => {
      if (status >= 400) return;
      const id = videoIdIn(captured);
      if (id) jobs.remember(id, workerUrl);
      return id ?? undefined;
    };
  // A deleted job is no work of its worker any more (a queued one is cancelled there).
  const endVideoJob: AnswerHook = (_workerUrl, status, captured) => {
    if (status >= 300) return;
    const id = videoIdIn(captured);
    if (!id) return;
    admission.jobEnded(id, false);
    videos.deleted(id);
  };
  const endMeshJob: AnswerHook = (_workerUrl, status, captured) => {
    if (status >= 300) return;
    const id = videoIdIn(captured);
    if (id) meshes.deleted(id);
  };
  // A poll that shows a job ended tells the scheduler the worker is done with it.
  const watchVideoJob: AnswerHook = (_workerUrl, status, captured) => {
    if (status !== 200) return;
    const end = videoJobEnd(captured);
    if (end) admission.jobEnded(end.id, end.ok, end.times);
  };
  const image: RouteSpec = { kind: "image", retry: "generation", capture: imageCaptureBytes, onAnswer: rememberImages };
  const generation: RouteSpec = { kind: "generation", retry: "generation", capture: 0 };
  return {
    image,
    generation,
    videoCreate: { kind: "video", retry: "create_once", capture: videoCaptureBytes, onAnswer: rememberJob(videos) },
    meshCreate: { kind: "mesh", retry: "create_once", capture: videoCaptureBytes, onAnswer: rememberJob(meshes) },
    passthrough: { kind: "other", retry: "none", capture: 0 },
    toOwner: { kind: "other", retry: "none", capture: 0 },
    videoPoll: { kind: "other", retry: "none", capture: jobCaptureBytes, onAnswer: watchVideoJob },
    videoDelete: { kind: "other", retry: "none", capture: jobCaptureBytes, onAnswer: endVideoJob },
    meshDelete: { kind: "other", retry: "none", capture: jobCaptureBytes, onAnswer: endMeshJob },
    byPath: new Map([
      ["/v1/images/generations", image],
      ["/rollout/generate", generation],
      ["/v1/diffusion/generate", generation],
    ]),
  };
}

/** A one-off spec for a request to one worker whose answer `hook` reads (an admin passthrough). */
export function hookedSpec(hook: AnswerHook | undefined): RouteSpec {
  return { kind: "other", retry: "none", capture: hook ? jobCaptureBytes : 0, onAnswer: hook };
}
