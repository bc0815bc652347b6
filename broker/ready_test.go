package broker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/yellow"
)

// TestBrokerListedOnlyWhenReady: a broker registers in yellow, and so
// enters the BrokerList, only once its routes are synced; it leaves the
// list as soon as it drains. Its Ready (the /readyz check) says the same.
func TestBrokerListedOnlyWhenReady(t *testing.T) {
	y := mustStartYellow(t)
	other := mustStartBroker(t, y, nil)

	b, err := broker.New(testOptions(y), testLogger(t).With("broker", "held"), nil)
	if err != nil {
		t.Fatal(err)
	}
	release := broker.HoldRegistration(b)
	done := make(chan error, 1)
	go func() { done <- b.Main() }()
	t.Cleanup(func() {
		release()
		b.Exit()
		if err := <-done; err != nil {
			t.Errorf("Main: %v", err)
		}
	})

	w := yellow.Watch(yellow.ClientOptions{Yellows: []string{y.RouterEndpoint()}, Heartbeat: hb, Logger: testLogger(t)})
	t.Cleanup(w.Close)
	listed := func(addr string) bool {
		_, ok := brokerlist.Brokers(w).Brokers[addr]
		return ok
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()

	// The held broker's routes are synced and the BrokerList lists the
	// other broker: had the held one registered, it would be listed too.
	checkFor(t, waitLong, "the held broker's view of yellow", func() bool { return broker.PoolSynced(b) })
	if err := w.WaitFor(ctx, func() bool { return listed(other.Advertise()) }); err != nil {
		t.Fatalf("the BrokerList never listed the ready broker: %v", err)
	}
	if listed(b.Advertise()) || y.instance(broker.ServiceName, b.ID()) != nil {
		t.Fatalf("a broker not ready is registered or listed: %v", brokerlist.Brokers(w))
	}
	if err := b.Ready(); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("Ready of the held broker = %v, want not registered", err)
	}
	if err := other.Ready(); err != nil {
		t.Errorf("Ready of the other broker = %v", err)
	}

	release()
	if err := w.WaitFor(ctx, func() bool { return listed(b.Advertise()) }); err != nil {
		t.Fatalf("the BrokerList never listed the broker once ready: %v", err)
	}
	checkFor(t, waitLong, "the broker ready", func() bool { return b.Ready() == nil })

	drained := make(chan error, 1)
	go func() { drained <- b.Drain(ctx) }()
	if err := w.WaitFor(ctx, func() bool { return !listed(b.Advertise()) }); err != nil {
		t.Fatalf("the BrokerList still lists a draining broker: %v", err)
	}
	if err := b.Ready(); err == nil {
		t.Error("Ready of a draining broker = nil")
	}
	if err := <-drained; err != nil {
		t.Errorf("Drain: %v", err)
	}
	if !listed(other.Advertise()) {
		t.Error("the other broker left the list")
	}
}

// TestBrokerDrainedBeforeSyncNeverListed: a broker that drains before its
// routes are synced never registers.
func TestBrokerDrainedBeforeSyncNeverListed(t *testing.T) {
	y := mustStartYellow(t)
	b, err := broker.New(testOptions(y), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	release := broker.HoldRegistration(b)
	done := make(chan error, 1)
	go func() { done <- b.Main() }()
	checkFor(t, waitLong, "the broker's view of yellow", func() bool { return broker.PoolSynced(b) })
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- b.Drain(ctx) }()
	checkFor(t, waitLong, "draining", b.Draining)
	release()
	if err := <-drained; err != nil {
		t.Errorf("Drain: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Main: %v", err)
	}
	if y.Yellow.Stats().Registers != 0 {
		t.Errorf("a broker drained before it was ready registered %d times", y.Yellow.Stats().Registers)
	}
}
