// Everything a program needs from jaiminho.
#pragma once

#include "jaiminho/clock.h"
#include "jaiminho/codec.h"
#include "jaiminho/consumer_handlers.h"
#include "jaiminho/event.h"
#include "jaiminho/inbox.h"
#include "jaiminho/logger.h"
#include "jaiminho/metrics.h"
#include "jaiminho/observer.h"
#include "jaiminho/options.h"
#include "jaiminho/outbox.h"
#include "jaiminho/publisher.h"
#include "jaiminho/relay.h"
#include "jaiminho/result.h"
#include "jaiminho/sinks.h"
#include "jaiminho/transaction.h"
#include "jaiminho/version.h"
