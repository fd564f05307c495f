// @sgl/diffusion-router-sdk: a typed client for sglang-d-router.
export { createRouterClient, SDK_VERSION } from "./client.js";
export type { RouterClient, RouterClientOptions } from "./client.js";
export { RouterClientError, routerErrorCode } from "./errors.js";
export type { RouterClientErrorCode, RouterClientErrorInit } from "./errors.js";
export { bearerInterceptor, valueToJson } from "./admin.js";
export type { RolloutJobOptions, RolloutJobRequest, RolloutJobResult, RolloutJobRun, RolloutJobs, RolloutJobSummary } from "./rollout-jobs.js";
export type { AdminClient, AdminTransport } from "./admin.js";
export type {
  CallOptions,
  Health,
  ImageData,
  ImagesRequest,
  ImagesResponse,
  ModelCard,
  ModelsList,
  RetryOptions,
  RolloutBytes,
  RolloutOptions,
  RolloutRequest,
  RolloutSample,
  RolloutStream,
  StreamedBody,
  TensorPayload,
  VideoContent,
  VideoCreateRequest,
  VideoJob,
  VideoList,
  VideoListQuery,
  VideoStatus,
  WaitForVideoOptions,
} from "./types.js";

// The RolloutService definition, for callers who want the raw client.
export { RolloutService } from "./gen/sgl/diffusion/router/v1/rollout_pb.js";
export type { RolloutState, RolloutItemState } from "./gen/sgl/diffusion/router/v1/rollout_pb.js";

// Admin errors are Connect's; re-exported so callers need no direct dependency.
export { Code, ConnectError } from "@connectrpc/connect";

// The AdminService definition and the message types its client uses.
export {
  AdminService,
  WorkerEventType,
  WorkerState,
} from "./gen/sgl/diffusion/router/v1/admin_pb.js";
export type {
  AddWorkerRequest,
  AddWorkerResponse,
  GetRouterStatusRequest,
  GetRouterStatusResponse,
  GetWorkerRequest,
  GetWorkerResponse,
  LaunchWorkersRequest,
  LaunchWorkersResponse,
  LauncherConfig,
  ListManagedWorkersRequest,
  ListManagedWorkersResponse,
  ListWorkersRequest,
  ListWorkersResponse,
  ManagedWorker,
  ReleaseMemoryOccupationRequest,
  ReleaseMemoryOccupationResponse,
  RemoveWorkerRequest,
  RemoveWorkerResponse,
  ResumeMemoryOccupationRequest,
  ResumeMemoryOccupationResponse,
  ScaleManagedWorkersRequest,
  ScaleManagedWorkersResponse,
  StopManagedWorkersRequest,
  StopManagedWorkersResponse,
  UpdateWeightsFromDiskRequest,
  UpdateWeightsFromDiskResponse,
  UpdateWorkerRequest,
  UpdateWorkerResponse,
  WatchWorkersRequest,
  WatchWorkersResponse,
  Worker,
  WorkerCapabilities,
  WorkerResult,
} from "./gen/sgl/diffusion/router/v1/admin_pb.js";
