// Errors of the wire: "<code>: <message>", as wire.Parse reads them.
/** The wire's error codes (README, The client wire; wire/errors.go). */
export const Codes = {
    BadFrame: "bad_frame",
    UnknownMethod: "unknown_method",
    Unauthenticated: "unauthenticated",
    BadRequest: "bad_request",
    NotFound: "not_found",
    Unavailable: "unavailable",
    Timeout: "timeout",
    RateLimited: "rate_limited",
    Overloaded: "overloaded",
    Internal: "internal",
    Moved: "moved",
    Conflict: "conflict",
};
/**
 * NoonError is an error reply of the broker, or an error of this client
 * with a wire code (a call's deadline: "timeout"; a lost connection:
 * "unavailable"; a malformed frame: "bad_frame"). `code` is the part of
 * the wire string before ": " ("" when the string has no code), `message`
 * the rest; `local` is true when this client made the error itself.
 */
export class NoonError extends Error {
    code;
    local;
    constructor(code, message, local = true) {
        super(message);
        this.name = "NoonError";
        this.code = code;
        this.local = local;
    }
    /** is reports whether the error has the code. */
    is(code) {
        return this.code === code;
    }
    /** The wire form: "<code>: <message>". */
    toString() {
        if (this.code === "")
            return this.message;
        return this.message === "" ? this.code : `${this.code}: ${this.message}`;
    }
    /** parse reads a wire error string as wire.Parse does. */
    static parse(s) {
        const i = s.indexOf(": ");
        const code = i < 0 ? s : s.slice(0, i);
        const msg = i < 0 ? "" : s.slice(i + 2);
        if (!/^[a-z0-9_]+$/.test(code))
            return new NoonError("", s, false);
        return new NoonError(code, msg, false);
    }
}
/** isCode reports whether err is a NoonError with the code. */
export function isCode(err, code) {
    return err instanceof NoonError && err.code === code;
}
//# sourceMappingURL=errors.js.map