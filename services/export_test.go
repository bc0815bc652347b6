package services

import "log/slog"

// Kill stops the server as if the process died: no drain, no
// deregistration (yellow expires the record).
func (s *Server) Kill() { s.exit(false) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
