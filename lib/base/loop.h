/* loop: the event loop every daemon's main thread runs (epoll underneath).
 *
 * One loop per program, run by one thread (the "loop thread"). It
 * multiplexes file-descriptor watches, monotonic timers (one-shot or
 * periodic, millisecond resolution), signals (through a signalfd) and
 * closures posted from other threads (through an eventfd).
 *
 * Threads: every function here must be called on the loop thread, except
 * loop_post() and loop_stop(), which any thread may call at any time.
 * Callbacks run on the loop thread, one at a time; a callback may add or
 * remove any watch or timer, including its own.
 *
 * Ownership: loop_watch_fd()/loop_timer_add() return handles owned by the
 * loop; the caller releases one with loop_watch_remove()/loop_timer_cancel()
 * (safe from inside its own callback; freed once the current dispatch
 * round ends). The loop never closes watched fds: the caller owns them and
 * closes them after removing the watch. loop_destroy() frees every handle
 * still registered without calling their callbacks.
 *
 * Signals: loop_signal() blocks the signal in the calling thread and reads
 * it from a signalfd. Call it on the main thread before any other thread
 * is created, so that every thread inherits the blocked mask. */
#ifndef DPF_LOOP_H
#define DPF_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_watch;
struct loop_timer;

/* epoll event bits as the callbacks see them (EPOLLIN etc. values). */
#define LOOP_READ 0x001u  /* EPOLLIN */
#define LOOP_WRITE 0x004u /* EPOLLOUT */
#define LOOP_ERROR 0x008u /* EPOLLERR */
#define LOOP_HUP 0x010u   /* EPOLLHUP */

/* An fd became ready; events is a mask of LOOP_* bits. */
typedef void (*loop_fd_fn)(void *arg, int fd, uint32_t events);
/* A timer fired (periodic timers stay armed; one-shot ones are disarmed
 * but stay allocated until cancelled or re-armed). */
typedef void (*loop_timer_fn)(void *arg, struct loop_timer *timer);
/* A signal arrived. */
typedef void (*loop_signal_fn)(void *arg, int signo);
/* A closure posted from any thread. */
typedef void (*loop_post_fn)(void *arg);

/* Create a loop. Returns NULL (with errno set) if the kernel refuses an
 * epoll or eventfd descriptor. */
struct loop *loop_create(void);
/* Free the loop and every handle still registered (no callbacks run);
 * closures still queued by loop_post() are dropped. */
void loop_destroy(struct loop *loop);

/* Dispatch events until loop_stop(). Returns 0, or -errno if epoll_wait
 * fails for a reason other than EINTR. */
int loop_run(struct loop *loop);
/* Dispatch one round: wait at most timeout_ms (-1 = until something
 * happens, 0 = poll) and run what is ready. Returns the number of
 * callbacks run, or -errno. */
int loop_run_once(struct loop *loop, int timeout_ms);
/* Make loop_run() return after the current callback. Any thread. */
void loop_stop(struct loop *loop);
/* True once loop_stop() was called, until loop_run() returns. */
bool loop_stopped(const struct loop *loop);

/* Watch fd for events (LOOP_READ/LOOP_WRITE; errors and hangups are always
 * reported). Returns NULL with errno set if epoll refuses the fd. */
struct loop_watch *loop_watch_fd(struct loop *loop, int fd, uint32_t events,
                                 loop_fd_fn fn, void *arg);
/* Change the event mask of a watch. 0 or -errno. */
int loop_watch_modify(struct loop_watch *w, uint32_t events);
/* Stop watching and release the handle (NULL is a no-op). */
void loop_watch_remove(struct loop_watch *w);

/* Arm a timer that fires after delay_ms and then, if period_ms > 0, every
 * period_ms (a periodic timer that fell behind fires once, not a burst). */
struct loop_timer *loop_timer_add(struct loop *loop, int64_t delay_ms,
                                  int64_t period_ms, loop_timer_fn fn,
                                  void *arg);
/* Re-arm an existing timer with a new delay and period. */
void loop_timer_reset(struct loop_timer *t, int64_t delay_ms,
                      int64_t period_ms);
/* Disarm and release a timer (NULL is a no-op). */
void loop_timer_cancel(struct loop_timer *t);

/* Deliver signo to fn on the loop thread instead of its default action.
 * Blocks the signal in the calling thread (see the header comment).
 * 0 or -errno. */
int loop_signal(struct loop *loop, int signo, loop_signal_fn fn, void *arg);

/* Queue fn(arg) to run on the loop thread. Any thread; never blocks on
 * the loop. Closures run in the order they were posted. */
void loop_post(struct loop *loop, loop_post_fn fn, void *arg);

/* Current time on the loop's clock (monotonic milliseconds). */
int64_t loop_now_ms(const struct loop *loop);

#endif
