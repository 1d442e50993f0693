// Command launcher runs one command and writes its wall time, exit code and
// peak resident set size as JSON to a file:
//
//	launcher RESULT.json BINARY [ARG...]
//
// The benchmark starts commands through it because Linux carries the peak RSS
// of the address space a process leaves at exec into the new program's
// ru_maxrss: a command started directly by the benchmark, which holds images in
// memory, would report the benchmark's peak. This launcher is small, so the
// floor it passes on is small, and it reports that floor too.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result is what the launcher writes.
type Result struct {
	WallNanos int64 `json:"wallNanos"`
	ExitCode  int   `json:"exitCode"`
	// MaxRSSKiB is the command's peak resident set size.
	MaxRSSKiB int64 `json:"maxRSSKiB"`
	// FloorKiB is the launcher's own peak before it starts the command: the
	// command's figure cannot be lower.
	FloorKiB int64 `json:"floorKiB"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: launcher RESULT.json BINARY [ARG...]")
	}
	floor, err := ownPeakKiB()
	if err != nil {
		return err
	}
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The command dies with the launcher when the benchmark is interrupted.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return fmt.Errorf("run %s: %w", args[1], err)
	}
	res := Result{WallNanos: wall.Nanoseconds(), ExitCode: cmd.ProcessState.ExitCode(), FloorKiB: floor}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.MaxRSSKiB = ru.Maxrss // KiB on Linux
	}
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return os.WriteFile(args[0], data, 0o644)
}

// ownPeakKiB reads VmHWM, the peak RSS of this program's own address space
// (getrusage would include what the benchmark passed on at exec).
func ownPeakKiB() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read own peak RSS: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("read own peak RSS: no VmHWM in /proc/self/status")
}
