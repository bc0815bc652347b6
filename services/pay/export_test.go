package pay

// SetAfterRecord sets the seam run after a new purchase is recorded and
// before its delivery (an error stops the request there, as a crash).
func (s *Service) SetAfterRecord(fn func() error) { s.afterRecord = fn }

// RequestHash is requestHash.
var RequestHash = requestHash
