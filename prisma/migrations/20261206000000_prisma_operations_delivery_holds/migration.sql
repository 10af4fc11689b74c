-- CreateTable
CREATE TABLE "operation_delivery_holds" (
    "id" BIGSERIAL NOT NULL,
    "subscriber" TEXT NOT NULL,
    "event_ids" BIGINT[],
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "held_until" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "operation_delivery_holds_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "operation_delivery_holds_subscriber_held_until_idx" ON "operation_delivery_holds"("subscriber", "held_until");


-- ================================================================================================
-- Written by hand: what a Prisma schema cannot say (see the first migration).
-- ================================================================================================

-- A hold names at least one event.
ALTER TABLE "operation_delivery_holds" ADD CONSTRAINT "operation_delivery_holds_events_present"
  CHECK (COALESCE(cardinality("event_ids"), 0) >= 1);

