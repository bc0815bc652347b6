package wire

import "github.com/noonhq/noon/idl/gen/platformpb"

// FromEnvelope returns the error an envelope carries as an *Error, or nil
// when its error code is empty.
func FromEnvelope(env *platformpb.Envelope) error {
	if env.GetErrorCode() == "" {
		return nil
	}
	return &Error{Code: env.GetErrorCode(), Message: env.GetErrorMessage()}
}

// ToEnvelope writes err into env's error code and message (clearing both for
// nil), with the code from CodeOf and the text from an *Error's Message or
// else err.Error().
func ToEnvelope(env *platformpb.Envelope, err error) {
	if err == nil {
		env.ErrorCode, env.ErrorMessage = "", ""
		return
	}
	e := AsError(err)
	env.ErrorCode = CodeOf(e)
	env.ErrorMessage = e.Message
}

// NotRun reports whether an error reply guarantees that the handler did not
// run, so that it is safe to send the request to another instance: the
// instance is draining, closing or at capacity.
func NotRun(rep *platformpb.Envelope) bool {
	switch rep.GetErrorCode() {
	case CodeOverloaded:
		return true
	case CodeUnavailable:
		return rep.GetErrorMessage() == DrainingMessage || rep.GetErrorMessage() == ClosingMessage
	}
	return false
}

// Draining reports whether rep is a draining instance's refusal.
func Draining(rep *platformpb.Envelope) bool {
	return rep.GetErrorCode() == CodeUnavailable && rep.GetErrorMessage() == DrainingMessage
}
