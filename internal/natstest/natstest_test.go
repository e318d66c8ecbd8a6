package natstest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/internal/natstest"
)

func TestMain(m *testing.M) {
	natstest.Main()
	os.Exit(m.Run())
}

// A 3-node cluster keeps an R3 stream writable while its leader is killed,
// and the killed node comes back on its store.
func TestClusterSurvivesLeaderKill(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	leader, err := c.StreamLeader("T")
	if err != nil || leader == "" {
		t.Fatalf("leader %q: %v", leader, err)
	}
	c.Server(leader).Kill()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.Publish(pctx, "t.1", []byte("x"))
		pcancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no publish 20 s after the leader's kill: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.Server(leader).Start(t)
	c.WaitJetStream(t, 30*time.Second)
}
