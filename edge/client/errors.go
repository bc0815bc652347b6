package client

import "strings"

// Error is an error reply from the broker: "<code>: <message>" on the wire,
// with code from a small stable set ("not_found", "unauthenticated",
// "rate_limited", "unavailable", ...; see DESIGN.md, The client wire).
type Error struct {
	// Code is the machine code, "" if the reply did not have the form
	// "<code>: <message>".
	Code string
	// Message is the human text.
	Message string
}

// Error returns the error as it was on the wire.
func (e *Error) Error() string {
	switch {
	case e.Code == "":
		return e.Message
	case e.Message == "":
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// WireCode returns e.Code, so that a service relaying the error keeps its
// code.
func (e *Error) WireCode() string { return e.Code }

// Is makes errors.Is(err, &client.Error{Code: "not_found"}) match any Error
// with that code; a target with a Message matches only that message too.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// ParseError splits an Err string "<code>: <message>" into an Error. A
// string without a code (not a lower-case identifier before ": ") is all
// Message.
func ParseError(s string) *Error {
	code, msg, found := strings.Cut(s, ": ")
	if !found {
		code, msg = s, ""
	}
	if !isCode(code) {
		return &Error{Message: s}
	}
	return &Error{Code: code, Message: msg}
}

// isCode reports whether s looks like a wire code: [a-z0-9_]+.
func isCode(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
