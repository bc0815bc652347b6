// noon's TypeScript SDK. See README.md.

export { Session, type SessionOptions, type SessionEvents, type LocalEvents, EVENT_RESUMED, EVENT_RESUME_FAILED, EVENT_DRAINING, EVENT_LOGGED_OUT, DEFAULT_CALL_TIMEOUT_MS, DEFAULT_RECONNECT_MIN_MS, DEFAULT_RECONNECT_MAX_MS } from "./session.js";
export { Connection, type ConnectionOptions, type Push, type WebSocketCtor, type WebSocketLike, PROTOCOL_VERSION, METHOD_HELLO } from "./connection.js";
export { NoonError, Codes, type Code, isCode } from "./errors.js";
export { fetchBrokerList, parseBrokerList, pickBroker, candidates, defaultWsUrl, type BrokerList, MAX_BROKER_LIST_BYTES } from "./brokerlist.js";
export * as frame from "./frame.js";
export { encode, decode, type StructDesc, type FieldDesc, type TypeSpec, MAX_DEPTH } from "./compact.js";
export type { CallOptions, Caller } from "./caller.js";
export { methods, structs, pushEvents, type PushEvents, ServiceClients } from "./gen/index.js";
export { echo, edge, friends, game, login, match, pay, room } from "./gen/index.js";
