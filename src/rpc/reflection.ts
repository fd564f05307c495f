import {
  create,
  createFileRegistry,
  toBinary,
  type DescFile,
  type DescService,
  type FileRegistry,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** gRPC status codes used in error_response (grpc::StatusCode). */
const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

/** What a reflection request asks, the same for v1 and v1alpha. */
type MessageRequest =
  | { case: "fileByFilename"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: "listServices"; value: string }
  | { case: undefined; value?: undefined };

/** The answer, the same for v1 and v1alpha (message_response). */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * The schema the router serves, indexed for reflection: the files of the
 * given services and everything they import, on @bufbuild/protobuf's file
 * registry. Built once; answers are computed from it per request.
 */
export interface ReflectionIndex {
  readonly registry: FileRegistry;
  /** Fully qualified names of the served services, in the given order. */
  readonly services: readonly string[];
  answer(request: MessageRequest): ReflectionAnswer;
}

function notFound(message: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode: NOT_FOUND, errorMessage: message } };
}

/** The file and everything it imports, transitively; the file first. */
function withDependencies(file: DescFile): DescFile[] {
  const out: DescFile[] = [];
  const seen = new Set<string>();
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.add(f.name);
    out.push(f);
    for (const d of f.dependencies) visit(d);
  };
  visit(file);
  return out;
}

/**
 * The file of each name that the registry does not look up itself: methods,
 * fields, oneofs, enum values (scoped beside their enum, as in protobuf).
 */
function memberFiles(registry: FileRegistry): Map<string, DescFile> {
  const members = new Map<string, DescFile>();
  for (const t of registry) {
    switch (t.kind) {
      case "service":
        for (const m of t.methods) members.set(`${t.typeName}.${m.name}`, t.file);
        break;
      case "message":
        for (const f of t.fields) members.set(`${t.typeName}.${f.name}`, t.file);
        for (const o of t.oneofs) members.set(`${t.typeName}.${o.name}`, t.file);
        break;
      case "enum": {
        const scope = t.typeName.includes(".") ? t.typeName.slice(0, t.typeName.lastIndexOf(".") + 1) : "";
        for (const v of t.values) members.set(`${scope}${v.name}`, t.file);
        break;
      }
      case "extension":
        break;
    }
  }
  return members;
}

/**
 * Indexes `services` (and their files' imports). Lookups of services,
 * methods, messages, enums, enum values, fields, oneofs and extensions by
 * fully qualified name (a leading dot is accepted).
 */
export function createReflectionIndex(services: readonly DescService[]): ReflectionIndex {
  const byName = new Map<string, DescFile>();
  for (const s of services) for (const f of withDependencies(s.file)) byName.set(f.proto.name, f);
  // One registry of every file, so dependencies resolve to the same descriptors.
  const registry = createFileRegistry(
    ...[...byName.values()].map((f) => createFileRegistry(f.proto, (dep) => byName.get(dep))),
  );

  const members = memberFiles(registry);

  const encoded = new Map<string, Uint8Array>();
  const bytesOf = (f: DescFile): Uint8Array => {
    let b = encoded.get(f.name);
    if (b === undefined) {
      b = toBinary(FileDescriptorProtoSchema, f.proto);
      encoded.set(f.name, b);
    }
    return b;
  };
  const filesAnswer = (file: DescFile): ReflectionAnswer => ({
    case: "fileDescriptorResponse",
    value: { fileDescriptorProto: withDependencies(file).map(bytesOf) },
  });
  const strip = (name: string) => (name.startsWith(".") ? name.slice(1) : name);
  const serviceNames = services.map((s) => s.typeName);

  return {
    registry,
    services: serviceNames,
    answer(request) {
      switch (request.case) {
        case "listServices":
          return { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } };
        case "fileByFilename": {
          const file = registry.getFile(request.value);
          return file ? filesAnswer(file) : notFound(`file not found: ${request.value}`);
        }
        case "fileContainingSymbol": {
          const name = strip(request.value);
          const file = registry.get(name)?.file ?? members.get(name);
          return file ? filesAnswer(file) : notFound(`symbol not found: ${request.value}`);
        }
        case "fileContainingExtension": {
          const { containingType, extensionNumber } = request.value;
          const message = registry.getMessage(strip(containingType));
          if (!message) return notFound(`message type not found: ${containingType}`);
          const ext = registry.getExtensionFor(message, extensionNumber);
          return ext ? filesAnswer(ext.file) : notFound(`extension ${extensionNumber} of ${containingType} not found`);
        }
        case "allExtensionNumbersOfType": {
          const name = strip(request.value);
          const message = registry.getMessage(name);
          if (!message) return notFound(`message type not found: ${request.value}`);
          const numbers: number[] = [];
          for (const t of registry) if (t.kind === "extension" && t.extendee.typeName === name) numbers.push(t.number);
          return { case: "allExtensionNumbersResponse", value: { baseTypeName: name, extensionNumber: numbers.sort((a, b) => a - b) } };
        }
        default:
          return { case: "errorResponse", value: { errorCode: INVALID_ARGUMENT, errorMessage: "empty reflection request: set one of message_request" } };
      }
    },
  };
}

/** One response: the answer, the request echoed, and its host as valid_host. */
function respond<R extends { host: string; messageRequest: MessageRequest }>(index: ReflectionIndex, req: R) {
  return { validHost: req.host, originalRequest: req, messageResponse: index.answer(req.messageRequest) };
}

/**
 * Serves gRPC server reflection (grpc.reflection.v1 and v1alpha) for
 * `services` and for itself, so `buf curl --list-services` and calls
 * without `--schema` work. Reflection exposes only the schema,
 * never data, so it takes no auth interceptor.
 */
export function registerReflection(router: ConnectRouter, services: readonly DescService[]): ReflectionIndex {
  const index = createReflectionIndex([...services, v1.ServerReflection, v1alpha.ServerReflection]);
  router.service(v1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) yield create(v1.ServerReflectionResponseSchema, respond(index, req));
    },
  });
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) yield create(v1alpha.ServerReflectionResponseSchema, respond(index, req));
    },
  });
  return index;
}
