package frame

import "encoding/binary"

// PushPrefix starts the first string of a push frame: "@" + event type.
const PushPrefix = '@'

// IsPush reports whether first, the first string of a response-shaped frame,
// marks a push (it starts with "@") rather than an error or success. It takes
// a string or a []byte, so the slice from ReadResponse needs no conversion.
func IsPush[T ~string | ~[]byte](first T) bool {
	return len(first) > 0 && first[0] == PushPrefix
}

// ParseRequest splits the body of a request frame, the bytes after TotalLen
// (so len(body) is TotalLen), into method and payload. Zero fields of lim
// take their defaults. The results alias body. A malformed body yields an
// *Error matching ErrBadFrame.
func ParseRequest(body []byte, lim Limits) (method, payload []byte, err error) {
	lim = lim.withDefaults()
	if err := checkTotal(int64(len(body)), lim); err != nil {
		return nil, nil, err
	}
	return parseBody(body, lim.MaxMethod, fieldMethod)
}

// ParseResponse splits the body of a response or push frame, the bytes after
// TotalLen, into its first string (an error, empty on success, or "@" + event
// type; see IsPush) and payload. Zero fields of lim take their defaults. The
// results alias body. A malformed body yields an *Error matching ErrBadFrame.
func ParseResponse(body []byte, lim Limits) (first, payload []byte, err error) {
	lim = lim.withDefaults()
	if err := checkTotal(int64(len(body)), lim); err != nil {
		return nil, nil, err
	}
	return parseBody(body, lim.MaxErr, fieldErr)
}

// DecodeRequestFrame decodes a whole request frame, TotalLen included, as
// carried by one WebSocket binary message: TotalLen must equal len(msg)-4.
// Zero fields of lim take their defaults. The results alias msg. A malformed
// message yields an *Error matching ErrBadFrame. The WebSocket read limit
// should be set to MaxFrame+4 so an oversized message is never buffered.
func DecodeRequestFrame(msg []byte, lim Limits) (method, payload []byte, err error) {
	lim = lim.withDefaults()
	body, err := unwrapMessage(msg, lim)
	if err != nil {
		return nil, nil, err
	}
	return parseBody(body, lim.MaxMethod, fieldMethod)
}

// DecodeResponseFrame is DecodeRequestFrame for a response or push frame.
func DecodeResponseFrame(msg []byte, lim Limits) (first, payload []byte, err error) {
	lim = lim.withDefaults()
	body, err := unwrapMessage(msg, lim)
	if err != nil {
		return nil, nil, err
	}
	return parseBody(body, lim.MaxErr, fieldErr)
}

// readLen decodes the big-endian int32 length at the start of b.
func readLen(b []byte) int64 {
	return int64(int32(binary.BigEndian.Uint32(b)))
}

// checkTotal checks a TotalLen against lim before anything is sized by it.
func checkTotal(n int64, lim Limits) error {
	switch {
	case n < 0:
		return newErr(ErrNegativeLength, fieldFrame, n, 0)
	case n > int64(lim.MaxFrame):
		return newErr(ErrTooLarge, fieldFrame, n, int64(lim.MaxFrame))
	case n < MinFrame:
		return newErr(ErrTooShort, fieldFrame, n, MinFrame)
	}
	return nil
}

// unwrapMessage checks the TotalLen prefix of a whole-frame message and
// returns the body after it.
func unwrapMessage(msg []byte, lim Limits) ([]byte, error) {
	if len(msg) < lenSize {
		return nil, newErr(ErrTooShort, fieldMessage, int64(len(msg)), lenSize)
	}
	total := readLen(msg)
	if err := checkTotal(total, lim); err != nil {
		return nil, err
	}
	if rest := int64(len(msg) - lenSize); total != rest {
		return nil, newErr(ErrInconsistent, fieldFrame, total, rest)
	}
	return msg[lenSize:], nil
}

// parseBody splits a body whose length already passed checkTotal (so
// len(body) >= MinFrame). The first string is checked for sign, against
// maxName and against the room left in the body before it is sliced; the
// payload length must then account for exactly the rest of the body. Both
// results are capped at their own length, so appending to one can never
// overwrite the other or whatever follows the body in its buffer.
func parseBody(body []byte, maxName int, field string) (first, payload []byte, err error) {
	n := readLen(body)
	room := int64(len(body) - MinFrame)
	switch {
	case n < 0:
		return nil, nil, newErr(ErrNegativeLength, field, n, 0)
	case n > int64(maxName):
		return nil, nil, newErr(ErrNameTooLong, field, n, int64(maxName))
	case n > room:
		return nil, nil, newErr(ErrInconsistent, field, n, room)
	}
	end := lenSize + int(n)
	first = body[lenSize:end:end]
	p := readLen(body[end:])
	start := end + lenSize
	left := int64(len(body) - start)
	switch {
	case p < 0:
		return nil, nil, newErr(ErrNegativeLength, fieldPayload, p, 0)
	case p != left:
		return nil, nil, newErr(ErrInconsistent, fieldPayload, p, left)
	}
	return first, body[start:len(body):len(body)], nil
}
