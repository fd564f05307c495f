export { Dispatcher, bodyTooLarge, type DispatcherOptions } from "./dispatcher.js";
export { newNotes, type DispatchResult, type RequestContext, type RouteSpec } from "./context.js";
export type { AnswerSink, RequestNotes } from "./answer-sink.js";
export { createRouteSpecs, hookedSpec, type RouteSpecs } from "./route-specs.js";
export { ticketOf } from "./ticket.js";
