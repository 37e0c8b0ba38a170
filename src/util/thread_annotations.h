// Clang's thread-safety annotations (-Wthread-safety, on for clang builds in
// cmake/JaiminhoWarnings.cmake): which mutex guards a field, which a function
// needs held or takes. Other compilers see nothing. See
// https://clang.llvm.org/docs/ThreadSafetyAnalysis.html; util/mutex.h has a
// mutex, lock and condition variable that carry them.
//
//   Mutex mu_;
//   int n_ GUARDED_BY(mu_) = 0;
//   void AddLocked(int k) REQUIRES(mu_);
//   void Add(int k) EXCLUDES(mu_) { MutexLock l(mu_); AddLocked(k); }
#pragma once

#if defined(__clang__)
#define JM_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define JM_THREAD_ANNOTATION(x)
#endif

// On a class: its objects are capabilities (mutexes) named `x` in warnings.
#define CAPABILITY(x) JM_THREAD_ANNOTATION(capability(x))
// On a class: an RAII object that holds a capability for its lifetime.
#define SCOPED_CAPABILITY JM_THREAD_ANNOTATION(scoped_lockable)

// On a field: read and written only with `x` held (PT_: the pointee).
#define GUARDED_BY(x) JM_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) JM_THREAD_ANNOTATION(pt_guarded_by(x))

// On a mutex: the order in which it is taken with others.
#define ACQUIRED_BEFORE(...) JM_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) JM_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))

// On a function: the caller holds these (exclusively, or shared) ...
#define REQUIRES(...) JM_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) JM_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
// ... or must not hold them (the function takes them itself).
#define EXCLUDES(...) JM_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))

// On a function: it takes or gives back these (no argument: `this`).
#define ACQUIRE(...) JM_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) JM_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) JM_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) JM_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
// It takes them when it returns `ret`.
#define TRY_ACQUIRE(...) JM_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// It checks at run time that they are held; the analysis assumes so after it.
#define ASSERT_CAPABILITY(x) JM_THREAD_ANNOTATION(assert_capability(x))
// It returns a reference to this capability.
#define RETURN_CAPABILITY(x) JM_THREAD_ANNOTATION(lock_returned(x))

// On a function: not analysed (say why where it is used).
#define NO_THREAD_SAFETY_ANALYSIS JM_THREAD_ANNOTATION(no_thread_safety_analysis)
