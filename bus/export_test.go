package bus

// DisableJetStream turns the embedded server's JetStream off, as the server
// does itself when its disk is full (tests of the recovery).
func (b *Bus) DisableJetStream() error { return b.srv.DisableJetStream() }
