package images

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/sandlot/sandlot/internal/registryproc"
	"github.com/sandlot/sandlot/internal/testimages"
)

// BenchmarkTenAtOnce: ten clients pull one uncached 20 MB image at once, through the cache and, in the same run,
// through distribution 2.8's pull-through cache alone; reports the bytes each cost the upstream, as multiples of
// the image's size (target for the cache: <= 1.1).
func BenchmarkTenAtOnce(b *testing.B) {
	up := testimages.NewUpstream(b)
	img := mustImage(testimages.Sized("bench", 20<<20))
	m, _ := img.Manifest()
	size := m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	var cacheRatio, proxyRatio []float64
	for i := 0; b.Loop(); i++ {
		ref := fmt.Sprintf("library/bench%d:1", i)
		up.Push(ref, img)

		up.Reset()
		listen, _ := registryproc.FreeLoopbackAddr()
		c, err := Start(context.Background(), Config{Dir: b.TempDir(), Listen: listen, Upstream: up.URL()})
		if err != nil {
			b.Fatal(err)
		}
		tenPulls(b, listen+"/"+ref)
		c.Close()
		cacheRatio = append(cacheRatio, float64(up.Counts().BlobBytes)/float64(size))

		up.Reset()
		addr, _ := registryproc.FreeLoopbackAddr()
		proxy, err := registryproc.Start(context.Background(), registryproc.Config{Dir: b.TempDir(), Addr: addr, Upstream: up.URL()})
		if err != nil {
			b.Fatal(err)
		}
		tenPulls(b, addr+"/"+ref)
		proxy.Stop()
		proxyRatio = append(proxyRatio, float64(up.Counts().BlobBytes)/float64(size))
	}
	b.ReportMetric(median(cacheRatio), "upstream-x-cache")
	b.ReportMetric(median(proxyRatio), "upstream-x-proxy-alone")
}

func tenPulls(b *testing.B, ref string) {
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := crane.Pull(ref, crane.Insecure)
			if err != nil {
				b.Error(err)
				return
			}
			layers, _ := img.Layers()
			for _, l := range layers {
				if rc, err := l.Compressed(); err == nil {
					buf := make([]byte, 1<<20)
					for {
						if _, err := rc.Read(buf); err != nil {
							break
						}
					}
					rc.Close()
				}
			}
		}()
	}
	wg.Wait()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
