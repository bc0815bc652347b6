// noon's TypeScript SDK. See README.md.
export { Session, EVENT_RESUMED, EVENT_RESUME_FAILED, EVENT_DRAINING, EVENT_LOGGED_OUT, DEFAULT_CALL_TIMEOUT_MS, DEFAULT_RECONNECT_MIN_MS, DEFAULT_RECONNECT_MAX_MS } from "./session.js";
export { Connection, PROTOCOL_VERSION, METHOD_HELLO } from "./connection.js";
export { NoonError, Codes, isCode } from "./errors.js";
export { fetchBrokerList, parseBrokerList, pickBroker, candidates, defaultWsUrl, MAX_BROKER_LIST_BYTES } from "./brokerlist.js";
export * as frame from "./frame.js";
export { encode, decode, MAX_DEPTH } from "./compact.js";
export { methods, structs, pushEvents, ServiceClients } from "./gen/index.js";
export { echo, edge, friends, game, login, match, pay, room } from "./gen/index.js";
//# sourceMappingURL=index.js.map