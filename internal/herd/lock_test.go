package herd

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// testApp names a service no other test or process on the machine uses.
func testApp(t *testing.T, name string) App {
	t.Helper()
	app, err := NewApp(fmt.Sprintf("%s-%d", name, os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func TestLockIsExclusivePerService(t *testing.T) {
	a := &Herd{app: testApp(t, "locka")}
	b := &Herd{app: testApp(t, "lockb")}
	unlock, ok, err := a.TryLock()
	if err != nil || !ok {
		t.Fatalf("first TryLock: ok %v, err %v", ok, err)
	}
	if _, ok, err := a.TryLock(); err != nil || ok {
		t.Fatalf("TryLock while held: ok %v, err %v; want not taken", ok, err)
	}
	unlockB, ok, err := b.TryLock()
	if err != nil || !ok {
		t.Fatalf("another service's TryLock: ok %v, err %v; want taken", ok, err)
	}
	unlockB()

	ctx, cancel := context.WithTimeout(context.Background(), 3*lockPoll)
	defer cancel()
	if _, err := a.Lock(ctx); err == nil {
		t.Fatal("Lock while held returned without the lock's release")
	}
	unlock()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	again, err := a.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	again()
}
