'use strict'

// The kafkajs tutorials against one broker.
const { useBroker } = require('../harness')
const { defineTutorials } = require('../tutorials')

defineTutorials(useBroker())
