package journal

import (
	"reflect"
	"strings"
	"testing"
)

// Only records about instances of the app count, once per record; lines
// that are not records are skipped.
func TestCountKills(t *testing.T) {
	out := strings.Join([]string{
		`{"UNIT":"app@2.service","__CURSOR":"a"}`,
		`{"UNIT":"app@2.service","__CURSOR":"b"}`,
		`{"UNIT":"app@10.service"}`,
		`{"UNIT":"app.socket"}`,
		`{"UNIT":"myapp@1.service"}`,
		`{"UNIT":"app-persist@3.service"}`,
		`{"UNIT":"cron.service"}`,
		`{"__CURSOR":"no unit"}`,
		``,
		`-- No entries --`,
	}, "\n")
	got, err := countKills(strings.NewReader(out), "app")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"app@2.service": 2, "app@10.service": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("countKills = %v, want %v", got, want)
	}
	if got, err := countKills(strings.NewReader(""), "app"); err != nil || len(got) != 0 {
		t.Errorf("no records: %v, %v", got, err)
	}
	if _, err := countKills(strings.NewReader(`{"UNIT":`), "app"); err == nil {
		t.Error("a truncated record was accepted")
	}
}

// The query selects PID 1's failure records with result watchdog, this
// boot, and nothing wider.
func TestWatchdogArgs(t *testing.T) {
	a := strings.Join(watchdogArgs(), " ")
	for _, want := range []string{"--boot", "--output=json", "_PID=1", "MESSAGE_ID=" + unitFailureResult, "UNIT_RESULT=watchdog"} {
		if !strings.Contains(a, want) {
			t.Errorf("journalctl %s lacks %s", a, want)
		}
	}
	if strings.Contains(a, "+") {
		t.Errorf("journalctl %s ORs its matches", a)
	}
}

func TestRestricted(t *testing.T) {
	for stderr, want := range map[string]bool{
		"": false,
		"Hint: You are currently not seeing messages from other users and the system.\n      Users in groups 'adm', 'systemd-journal' can see all messages.": true,
		"No journal files were opened due to insufficient permissions.":                                                                                      true,
		"Journal file /var/log/journal/x/system.journal is truncated, ignoring file.":                                                                        false,
	} {
		if got := restricted(stderr); got != want {
			t.Errorf("restricted(%q) = %v, want %v", stderr, got, want)
		}
	}
}
