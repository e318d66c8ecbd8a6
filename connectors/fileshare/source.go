package fileshare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/studio-b12/gowebdav"
	"go.uber.org/zap"
)

// source is one file share: it keeps its part of the index current and opens
// its files.
type source interface {
	// scan brings the index up to date with the share: new and changed files
	// are put, vanished ones removed. Unchanged entries (same size and
	// modification time, or ETag) are left as they are.
	scan(ctx context.Context, x *Index) error
	// watch keeps the index current until ctx ends.
	watch(ctx context.Context, x *Index, log *zap.Logger)
	// open opens a file by its index path.
	open(ctx context.Context, p string) (io.ReadCloser, error)
}

// hidden: dot files, Office lock files (~$x.docx) and temporaries are not offered.
func hidden(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "~$") || strings.HasSuffix(name, ".tmp")
}

// reconcile puts the listed entries that changed and removes the source's
// entries under prefix that were not listed.
func reconcile(x *Index, src, prefix string, listed map[string]Entry) {
	for _, old := range x.Source(src) {
		if !strings.HasPrefix(old.Path, prefix) {
			continue
		}
		if _, ok := listed[old.Path]; !ok {
			x.Remove(src, old.Path)
		}
	}
	for p, e := range listed {
		if old, ok := x.Get(src, p); ok && old.Size == e.Size && old.ModTime.Equal(e.ModTime) && old.ETag == e.ETag {
			continue
		}
		x.Put(e)
	}
}

// dirSource is a local or mounted directory tree, watched with fsnotify.
type dirSource struct {
	name, root string
	// rescan: a full walk this often besides the watch (events can be lost:
	// the kernel's queue overflows, network mounts send none).
	rescan time.Duration
}

func (d *dirSource) rel(abs string) (string, bool) {
	r, err := filepath.Rel(d.root, abs)
	if err != nil || r == "." || strings.HasPrefix(r, "..") {
		return "", false
	}
	return filepath.ToSlash(r), true
}

func (d *dirSource) walk(root string) (map[string]Entry, []string, error) {
	listed := map[string]Entry{}
	var dirs []string
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // an unreadable corner does not stop the scan
		}
		if p != root && hidden(de.Name()) {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if de.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		if !de.Type().IsRegular() {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return nil
		}
		if r, ok := d.rel(p); ok {
			listed[r] = Entry{Source: d.name, Path: r, Size: info.Size(), ModTime: info.ModTime().UTC()}
		}
		return nil
	})
	return listed, dirs, err
}

func (d *dirSource) scan(_ context.Context, x *Index) error {
	listed, _, err := d.walk(d.root)
	if err != nil {
		return fmt.Errorf("source %s: %w", d.name, err)
	}
	reconcile(x, d.name, "", listed)
	return nil
}

func (d *dirSource) watch(ctx context.Context, x *Index, log *zap.Logger) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("fsnotify unavailable; periodic scans only", zap.String("source", d.name), zap.Error(err))
		periodic(ctx, d, x, d.rescan, log)
		return
	}
	defer w.Close()
	// add watches dir and the directories below it, each before its entries
	// are read (WalkDir visits a directory before listing it), so a file or
	// directory created meanwhile is either listed or reported.
	add := func(dir string) {
		_ = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return nil
			case !de.IsDir():
				return nil
			case p != dir && hidden(de.Name()):
				return filepath.SkipDir
			}
			if err := w.Add(p); err != nil {
				log.Warn("watch", zap.String("source", d.name), zap.String("dir", p), zap.Error(err))
			}
			return nil
		})
	}
	add(d.root)
	// The tree may have changed between the start-up scan and the watches.
	if err := d.scan(ctx, x); err != nil {
		log.Warn("scan", zap.String("source", d.name), zap.Error(err))
	}
	tick := time.NewTicker(d.rescan)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := d.scan(ctx, x); err != nil {
				log.Warn("scan", zap.String("source", d.name), zap.Error(err))
			}
		case err := <-w.Errors:
			log.Warn("watch", zap.String("source", d.name), zap.Error(err)) // overflow: the next scan catches up
		case ev := <-w.Events:
			r, ok := d.rel(ev.Name)
			if !ok || hidden(path.Base(r)) {
				continue
			}
			switch {
			case ev.Has(fsnotify.Remove), ev.Has(fsnotify.Rename):
				x.Remove(d.name, r) // a rename also sends Create for the new name
			case ev.Has(fsnotify.Create), ev.Has(fsnotify.Write):
				info, err := os.Stat(ev.Name)
				switch {
				case err != nil:
					x.Remove(d.name, r)
				case info.IsDir():
					add(ev.Name)
					listed, _, _ := d.walk(ev.Name)
					reconcile(x, d.name, r+"/", listed)
				case info.Mode().IsRegular():
					x.Put(Entry{Source: d.name, Path: r, Size: info.Size(), ModTime: info.ModTime().UTC()})
				}
			}
		}
	}
}

func (d *dirSource) open(_ context.Context, p string) (io.ReadCloser, error) {
	clean := path.Clean("/" + p)[1:]
	if clean == "" || clean != p {
		return nil, fmt.Errorf("source %s: bad path %q", d.name, p)
	}
	return os.Open(filepath.Join(d.root, filepath.FromSlash(clean)))
}

// periodic scans s every interval until ctx ends.
func periodic(ctx context.Context, s source, x *Index, every time.Duration, log *zap.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.scan(ctx, x); err != nil && ctx.Err() == nil {
				log.Warn("scan", zap.Error(err))
			}
		}
	}
}

// davSource is a WebDAV share, scanned periodically: every directory is
// listed (PROPFIND, depth 1) and only files whose ETag or modification time
// changed are re-indexed; no file content is read.
type davSource struct {
	name, root string
	every      time.Duration
	c          *gowebdav.Client
}

func newDAVSource(name string, s SourceConfig, every time.Duration) *davSource {
	c := gowebdav.NewClient(s.URL, s.User, s.Password)
	c.SetTimeout(s.Timeout)
	root := "/" + strings.Trim(s.Root, "/")
	return &davSource{name: name, root: root, every: every, c: c}
}

func (d *davSource) scan(ctx context.Context, x *Index) error {
	listed := map[string]Entry{}
	if err := d.list(ctx, "", listed); err != nil {
		return fmt.Errorf("source %s: %w", d.name, err)
	}
	reconcile(x, d.name, "", listed)
	return nil
}

func (d *davSource) list(ctx context.Context, rel string, listed map[string]Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	infos, err := d.c.ReadDir(path.Join(d.root, rel))
	if err != nil {
		return err
	}
	for _, fi := range infos {
		if hidden(fi.Name()) {
			continue
		}
		p := strings.TrimPrefix(path.Join(rel, fi.Name()), "/")
		if fi.IsDir() {
			if err := d.list(ctx, p, listed); err != nil {
				return err
			}
			continue
		}
		e := Entry{Source: d.name, Path: p, Size: fi.Size(), ModTime: fi.ModTime().UTC()}
		if f, ok := fi.(gowebdav.File); ok {
			e.ETag = f.ETag()
		}
		listed[p] = e
	}
	return nil
}

func (d *davSource) watch(ctx context.Context, x *Index, log *zap.Logger) {
	periodic(ctx, d, x, d.every, log.With(zap.String("source", d.name)))
}

func (d *davSource) open(ctx context.Context, p string) (io.ReadCloser, error) {
	r, err := d.c.ReadStream(path.Join(d.root, p))
	if err != nil {
		var se gowebdav.StatusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			return nil, fmt.Errorf("source %s: %s: %w", d.name, p, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("source %s: %w", d.name, err)
	}
	return r, nil
}
